"""Score coalitions on a machine that has only torch and transformers (e.g. a lent GPU).

lm-eval and the task data stay here: `export_job` writes the requests as token arrays, the
coalitions, the model's config and its weights, either in parts small enough to carry or, for a
model loaded from a GGUF file, as that file (2.6x smaller for SmolLM2; the other side then needs the
`gguf` package; a file larger than one carry travels as `split_file` parts), and for a generative task
the tokenizer (its stop strings are found in text). There, `python -m lsi.remote JOB [JOB ...] OUT`
rebuilds the model (once for jobs of the same weights), checks that its weights are bit for bit the
ones exported, and scores the coalitions with the same worker as local scoring and Ray
(`lsi.jobs.Worker`).
Back here, `import_scores` turns the log-likelihoods into lm-eval's metrics and stores them, checked
against the job's model and requests. This module imports nothing but torch, transformers, numpy and
lsi's engine at import time, so it runs on such a machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from lsi.errors import UserError
from lsi.generation import Generated
from lsi.jobs import ScoringJob, Unit, checked_worker, decoder, place_blocks

if TYPE_CHECKING:
    from lsi.scoring import Scorer

JOB = "job.json"
SCORES = "scores.npz"
TOKENIZER = "tokenizer"  # a generative job's tokenizer, saved by transformers
PART_BYTES = 60 * 2**20  # under the 64 MiB a device call carries
PARTS = ".parts.json"  # a split file's manifest: FILE.parts.json beside FILE.part000, FILE.part001...


def export_job(
    scorer: Scorer, coalitions: Sequence[str], folder: Path, part_bytes: int = PART_BYTES, gguf: bool = False
) -> Path:
    """Write everything a torch + transformers machine needs to score `coalitions` for this scorer.

    `gguf`: name the model's GGUF file (carried separately) instead of writing its weights in parts.
    """
    from lsi.models import gguf_path

    source = gguf_path(scorer.lm.identity.name) if gguf else None
    if gguf and source is None:
        raise UserError(f"{scorer.lm.identity.name} was not loaded from a GGUF file: export weights in parts")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scorer.job.save(folder)
    job = {
        "weights_sha256": scorer.lm.identity.weights_sha256,
        "model": scorer.lm.identity.name,
        "dtype": scorer.lm.dtype,
        "task": scorer.task.name,
        "limit": scorer.limit,
        "granularity": scorer.granularity,
        "players": [p.name for p in scorer.players],
        "max_length": scorer.max_length,
        "coalitions": list(dict.fromkeys(coalitions)),
        "state_sha256": state_digest(scorer.lm.model),
    }
    if scorer.generation:
        scorer.lm.tokenizer.save_pretrained(folder / TOKENIZER)
    if source is not None:
        job["gguf"] = source.name
    else:  # the model is rebuilt from its config, then loaded with the parts
        (folder / "config.json").write_text(scorer.lm.model.config.to_json_string())
        job["weight_parts"] = _save_weights(scorer.lm.model, folder, part_bytes)
    path = folder / JOB
    path.write_text(json.dumps(job, indent=1))
    return path


def state_digest(model: torch.nn.Module) -> str:
    """sha256 over the state dict's names and bytes: equal only for bit-identical weights, whichever
    transformers version or file format rebuilt them."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _save_weights(model: torch.nn.Module, folder: Path, part_bytes: int) -> list[str]:
    """The state dict in parts of at most `part_bytes`; a larger tensor is cut along its first axis.

    Tied tensors (one storage under two names) are written once; the model re-ties them on load.
    """
    from safetensors.torch import save_file

    pieces: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        if tensor.untyped_storage().data_ptr() in seen:
            continue
        seen.add(tensor.untyped_storage().data_ptr())
        rows = max(1, part_bytes // max(1, tensor[0].nbytes if tensor.dim() else tensor.nbytes))
        if tensor.dim() == 0 or tensor.shape[0] <= rows:
            pieces.append((name, tensor))
        else:
            pieces += [(f"{name}::{i}", chunk) for i, chunk in enumerate(torch.split(tensor, rows))]
    parts, current, size = [], {}, 0
    for name, tensor in pieces:
        if current and size + tensor.nbytes > part_bytes:
            parts.append(current)
            current, size = {}, 0
        current[name] = tensor.contiguous().clone()
        size += tensor.nbytes
    parts.append(current)
    names = []
    for i, part in enumerate(parts):
        names.append(f"weights-{i:03d}.safetensors")
        save_file(part, folder / names[-1])
    return names


def split_file(path: Path, folder: Path, part_bytes: int = PART_BYTES) -> Path:
    """Cut `path` into `folder`/NAME.partNNN of at most `part_bytes` each, with a manifest of their
    sizes and the whole file's sha256; returns the manifest. Parts already there that the manifest
    vouches for are kept: one model's parts serve all its jobs. The file's hash is the one model
    loading remembers (`lsi.models._sha256_files`), so a second export costs no rehash.

    A GGUF file travels whole only where one carry holds it; the 1.5B's (1.04 GiB) needs 18 carries."""
    from lsi.models import _sha256_files

    path, folder = Path(path), Path(folder)
    manifest = folder / (path.name + PARTS)
    size, digest = path.stat().st_size, _sha256_files([path])
    if manifest.is_file() and _split_matches(manifest, size, digest):
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)  # written last: parts without one are an unfinished split
    names = []
    with path.open("rb") as source:
        while chunk := source.read(part_bytes):
            names.append(f"{path.name}.part{len(names):03d}")
            (folder / names[-1]).write_bytes(chunk)
    record = {"file": path.name, "bytes": size, "sha256": digest, "parts": names}
    manifest.write_text(json.dumps(record, indent=1))
    return manifest


def join_parts(manifest: Path) -> Path:
    """The file a `split_file` manifest describes, joined beside its parts and checked against its
    sha256 (kept once joined: a rerun on the same machine only checks it)."""
    manifest = Path(manifest)
    record = json.loads(manifest.read_text())
    target = manifest.parent / record["file"]
    present = target.is_file() and target.stat().st_size == record["bytes"]
    if present and _file_sha256(target) == record["sha256"]:
        return target
    missing = [name for name in record["parts"] if not (manifest.parent / name).is_file()]
    if missing:
        raise UserError(f"{len(missing)} parts of {record['file']} are missing ({missing[0]}...): carry them")
    partial = target.with_name(target.name + ".joining")
    with partial.open("wb") as joined:
        for name in record["parts"]:
            joined.write((manifest.parent / name).read_bytes())
    if _file_sha256(partial) != record["sha256"]:
        partial.unlink()
        raise UserError(f"the parts of {record['file']} join to other bytes than were split: carry them anew")
    partial.replace(target)
    return target


def _split_matches(manifest: Path, size: int, digest: str) -> bool:
    record = json.loads(manifest.read_text())
    folder = manifest.parent
    sizes = [(folder / n).stat().st_size if (folder / n).is_file() else -1 for n in record["parts"]]
    return record["sha256"] == digest and record["bytes"] == size == sum(sizes) and min(sizes) > 0


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(2**24):
            digest.update(chunk)
    return digest.hexdigest()


def _load_weights(folder: Path, parts: Sequence[str]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    pieces: dict[str, torch.Tensor] = {}
    for part in parts:
        pieces |= load_file(folder / part)
    state: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for key, tensor in pieces.items():
        name, _, index = key.partition("::")
        state.setdefault(name, []).append((int(index or 0), tensor))
    return {name: torch.cat([t for _, t in sorted(chunks)]) for name, chunks in state.items()}


def run_job(
    folder: Path,
    out: Path,
    device: str = "cuda",
    batch_tokens: int = 65536,
    max_rows: int = 256,
    gguf: Path | None = None,
    devices: Sequence[str] = (),
) -> Path:
    """Score the job's coalitions with lsi's worker; writes `scores.npz` (log-likelihoods, greedy flags).

    `gguf`: where the job's GGUF file is, if not in `folder`; `devices`: split the blocks over these."""
    return run_jobs([folder], [out], device, batch_tokens, max_rows, [gguf] if gguf else [], devices)[0]


def run_jobs(
    folders: Sequence[Path],
    outs: Sequence[Path],
    device: str = "cuda",
    batch_tokens: int = 65536,
    max_rows: int = 256,
    ggufs: Sequence[Path] = (),
    devices: Sequence[str] = (),
) -> list[Path]:
    """Score jobs in turn, writing each one's scores as soon as it is done, and rebuild the model only
    when a job's weights differ from the previous job's: on a lent H200 rebuilding from a GGUF took
    15-20 s, as long as scoring a task.

    `ggufs`: the jobs' GGUF files (or `split_file` manifests of their parts), matched to a job by file
    name (a single one serves every job).
    `devices`: a model larger than one device is split over these, in equal runs of blocks."""
    model, digest, written = None, None, []
    for folder, out in zip(map(Path, folders), map(Path, outs), strict=True):
        job = json.loads((folder / JOB).read_text())
        start = time.perf_counter()
        if job["state_sha256"] != digest:
            model = None  # free the last model before building the next
            model = _checked_model(
                folder, job, devices[0] if devices else device, _job_gguf(folder, job, ggufs)
            )
            if len(devices) > 1:
                place_blocks(model, devices)
            digest = job["state_sha256"]
        scoring = ScoringJob.load(folder, job["max_length"], batch_tokens, max_rows)
        worker = checked_worker(model, job["granularity"], job["players"], _decoder(folder, scoring))
        unit = Unit(tuple(job["coalitions"]), tuple(range(len(worker.batches(scoring)))))
        loaded = time.perf_counter()
        result = worker.score(scoring, unit)
        loglik = np.zeros((len(unit.coalitions), scoring.n_requests))
        greedy = np.zeros(loglik.shape, dtype=bool)
        loglik[:, result.requests], greedy[:, result.requests] = result.loglik, result.greedy
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            out / SCORES,
            coalitions=np.array(job["coalitions"]),
            loglik=loglik,
            greedy=greedy,
            weights_sha256=np.array(job["weights_sha256"]),
            device=np.array(result.device),
            seconds=np.array([loaded - start, result.seconds]),
            **_generated_arrays(result.generated),
        )
        written.append(out / SCORES)
    return written


def _decoder(folder: Path, job: ScoringJob):  # noqa: ANN202 - a decode callable, or None
    """A generative job's decoder, from the tokenizer exported beside it."""
    if not job.generation:
        return None
    from transformers import AutoTokenizer

    if not (folder / TOKENIZER).is_dir():
        raise UserError(f"the generative job {folder} has no {TOKENIZER}/ folder: export it again")
    return decoder(AutoTokenizer.from_pretrained(folder / TOKENIZER))


def _generated_arrays(generated: Sequence[Sequence[Generated]]) -> dict[str, np.ndarray]:
    """Continuations [coalition][document] as flat arrays: tokens, lengths and smallest logit gaps."""
    if not generated:
        return {}
    flat = [g for row in generated for g in row]
    return {
        "gen_tokens": np.array([t for g in flat for t in g.tokens], dtype=np.int64),
        "gen_lengths": np.array([[len(g.tokens) for g in row] for row in generated], dtype=np.int64),
        "gen_gaps": np.array([[g.min_gap for g in row] for row in generated]),
    }


def _generated(data: np.lib.npyio.NpzFile) -> list[list[Generated]] | None:
    """`_generated_arrays` read back (None for a job without generation)."""
    if "gen_tokens" not in data:
        return None
    lengths, gaps = data["gen_lengths"], data["gen_gaps"]
    tokens = iter(np.split(data["gen_tokens"], np.cumsum(lengths.ravel())[:-1]))
    return [[Generated(tuple(next(tokens).tolist()), float(gap)) for gap in row_gaps] for row_gaps in gaps]


def _job_gguf(folder: Path, job: dict, ggufs: Sequence[Path]) -> Path | None:
    if "gguf" not in job:
        return None
    files = [join_parts(g) if str(g).endswith(PARTS) else Path(g) for g in ggufs]
    named = [f for f in files if f.name == job["gguf"]]
    if named:
        return named[0]
    return files[0] if len(files) == 1 else folder / job["gguf"]


def _checked_model(folder: Path, job: dict, device: str, gguf: Path | None) -> torch.nn.Module:
    """The job's model, rebuilt and checked bit for bit against the exported weights."""
    dtype = getattr(torch, job["dtype"])
    if gguf is not None:
        model = _model_from_gguf(gguf, dtype, device)
    else:
        model = _model_from_parts(folder, job["weight_parts"], dtype, device)
    if state_digest(model) != job["state_sha256"]:
        why = (
            "another transformers version may dequantise or permute a GGUF differently: export the "
            "weights in parts instead"
            if "gguf" in job
            else "a weight part is damaged or from another export: carry the job's parts again"
        )
        raise UserError(f"the rebuilt weights differ from the exported model's ({why})")
    return model


def _model_from_parts(folder: Path, parts: Sequence[str], dtype: torch.dtype, device: str) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    missing, unexpected = model.load_state_dict(_load_weights(folder, parts), strict=False)
    model.tie_weights()
    untied = [k for k in missing if k not in _tied_names(model)]
    if untied or unexpected:
        raise UserError(f"the job's weights do not fit its config: missing {untied}, unexpected {unexpected}")
    return model.eval()


def _model_from_gguf(path: Path, dtype: torch.dtype, device: str) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    if not path.is_file():
        raise UserError(f"the job's GGUF file {path} is missing: carry it and pass its path with --gguf")
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    return model.to(device).eval()


def _tied_names(model: torch.nn.Module) -> set[str]:
    """Parameter names that share storage with an earlier one (written once by `_save_weights`)."""
    seen: dict[int, str] = {}
    tied = set()
    for name, tensor in model.state_dict().items():
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen:
            tied.add(name)
        seen.setdefault(ptr, name)
    return tied


def import_scores(scorer: Scorer, scores: Path) -> int:
    """Store the coalitions scored elsewhere, after checking they are this scorer's model and requests;
    returns how many were new."""
    data = np.load(scores)
    if str(data["weights_sha256"]) != scorer.lm.identity.weights_sha256:
        raise UserError(f"{scores} was scored with other weights than {scorer.lm.identity.name}'s")
    if data["loglik"].shape[1] != len(scorer.requests):
        raise UserError(
            f"{scores} holds {data['loglik'].shape[1]} requests; this task slice has {len(scorer.requests)}"
        )
    seconds = float(data["seconds"][1]) / len(data["coalitions"])
    return scorer.store_scores(
        [str(c) for c in data["coalitions"]],
        data["loglik"],
        data["greedy"],
        seconds,
        str(data["device"]),
        _generated(data),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="score exported lsi jobs here (needs torch + transformers)")
    parser.add_argument("jobs", type=Path, nargs="+", help="the folders export_job wrote")
    parser.add_argument(
        "out", type=Path, help="where scores.npz goes; with several jobs, OUT/<job folder name>/scores.npz"
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-tokens", type=int, default=65536)
    parser.add_argument("--max-rows", type=int, default=256)
    parser.add_argument(
        "--gguf",
        type=Path,
        nargs="+",
        default=[],
        help=f"the jobs' GGUF files, if not in the jobs, or the {PARTS} manifests of their parts",
    )
    parser.add_argument(
        "--devices", nargs="+", default=[], help="split the model's blocks over these (e.g. cuda:0 cuda:1)"
    )
    args = parser.parse_args(argv)
    names = [job.resolve().name for job in args.jobs]
    if len(set(names)) < len(names):
        parser.error(f"job folders need distinct names, as each names its scores' folder: {names}")
    outs = [args.out] if len(args.jobs) == 1 else [args.out / name for name in names]
    for path in run_jobs(
        args.jobs, outs, args.device, args.batch_tokens, args.max_rows, args.gguf, args.devices
    ):
        print(f"scores: {path} ({float(np.load(path)['seconds'][1]):.1f} s scoring)", flush=True)


if __name__ == "__main__":
    main()
