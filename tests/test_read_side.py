"""The model-free read side: stores, results, analysis, figures and estimators import neither torch,
transformers nor lm-eval, so that figures and tables regenerate on a machine without the model stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_STACK = ("torch", "transformers", "lm_eval")
READ_SIDE = (
    "lsi.store",
    "lsi.results",
    "lsi.analysis",
    "lsi.report",
    "lsi.figures",
    "lsi.estimators",
    "lsi.layer_game",
    "lsi.margins",
    "lsi.config",
    "lsi.choices",
    "lsi.provenance",
    "lsi.notebook_outputs",
    "lsi.pipeline",  # the cell's orchestration: the model stack loads only when a coalition is missing
)
BLOCKER = f"""
import sys

class _ModelStackBlocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {MODEL_STACK!r}:
            raise ImportError(f"{{name}} is blocked: the read side must not need it")
        return None

sys.meta_path.insert(0, _ModelStackBlocker())
"""


def blocked_environment(folder: Path) -> dict[str, str]:
    """Environment variables under which a Python process (a notebook kernel too) cannot import the
    model stack: a sitecustomize module on PYTHONPATH installs an import hook that raises ImportError."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def _loaded_after(code: str) -> list[str]:
    loaded = f"sorted(set({MODEL_STACK!r}) & set(sys.modules))"
    script = f"import sys\n{code}\nprint(__import__('json').dumps({loaded}))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_read_side_modules_do_not_import_the_model_stack() -> None:
    assert _loaded_after("\n".join(f"import {module}" for module in READ_SIDE)) == []


def test_lsi_scores_and_an_estimate_from_a_store_need_no_model_stack() -> None:
    store = "results/scores/smollm2-135m/arc_easy/block-float32-limit50"
    code = f"""
import contextlib, io
from pathlib import Path
from lsi.cli import main
from lsi.estimators import estimate
from lsi.layer_game import LayerGame
from lsi.store import ScoreStore
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["scores", "--model", "smollm2-135m", "--task", "arc_easy", "--limit", "50",
                 "--granularity", "block", "--dtype", "float32", "--json"]) == 0
estimate(LayerGame(ScoreStore.open(Path("{store}"))), "window", bootstrap=0, n_lim=1)
"""
    assert _loaded_after(code) == []


def test_the_blocker_blocks(tmp_path: Path) -> None:
    """The hook the notebook test relies on really makes the model stack unimportable."""
    env = blocked_environment(tmp_path / "blocker")
    import os

    proc = subprocess.run(
        [sys.executable, "-c", "import torch"], env=os.environ | env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr
