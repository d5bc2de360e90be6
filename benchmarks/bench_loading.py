"""Loading an embedded model from its GGUF file against loading its converted checkpoint
(`lsi.gguf_cache`), alternating in one process: seconds per `load_model`, model and tokenizer.

    python benchmarks/bench_loading.py [--models smollm2-135m gemma3-270m] [--rounds 2] [--dtype float32]

The conversion is made first (and timed once) where the cache lacks it.
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from lsi import gguf_cache
from lsi.assets import embedded_gguf, embedded_models, is_installed
from lsi.models import load_model


def _timed_load(name: str, dtype: str, cached: bool) -> float:
    os.environ["LSI_GGUF_CACHE"] = "1" if cached else "0"
    start = time.perf_counter()
    load_model(name, dtype)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[m for m in embedded_models() if is_installed(m)])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    os.environ["LSI_QUIET_LOADING"] = "1"
    rows = []
    for name in args.models:
        sha = embedded_models()[name].sha256
        if gguf_cache.ready(sha) is None:
            start = time.perf_counter()
            gguf_cache.converted(embedded_gguf(name).parent, embedded_gguf(name).name, sha)
            print(f"{name}: converted once in {time.perf_counter() - start:.1f} s")
        for _ in range(args.rounds):
            for cached in (False, True):
                rows.append({"model": name, "from": "cache" if cached else "gguf",
                             "seconds": _timed_load(name, args.dtype, cached)})  # fmt: skip
    table = pd.DataFrame(rows).groupby(["model", "from"])["seconds"].median().unstack()
    table["ratio"] = table["gguf"] / table["cache"]
    print(f"median seconds per load_model over {args.rounds} rounds ({args.dtype}):")
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()
