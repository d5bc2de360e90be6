"""SIGTERM and SIGINT to `lsi study`: forwarded to the notebook's kernel (in a session of its own, it
never sees the driver's signals) as an interrupt; the kernel stops with every finished chunk stored and
is shut down; the cell is left not done; exit 143 or 130 with one line; a rerun scores only the rest."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
import yaml
from test_study import _notebook

from lsi.store import ScoreStore
from lsi.store_check import check
from lsi.study import is_done, load_grid

pytestmark = pytest.mark.slow  # runs notebooks with papermill
ROOT = Path(__file__).resolve().parent.parent
LSI = str(Path(sys.executable).parent / "lsi")
STOPPED = "lsi: interrupted; every coalition scored so far is stored: rerun to resume"

# With a file "stop" there: signal the driver, then wait until the driver's interrupt reaches this
# kernel (taken by a handler, so this cell ends normally and only the next cell can be skipped).
STOP_CELL = """\
import os, signal, time
from pathlib import Path

Path("kernel.pid").write_text(str(os.getpid()))
if Path("stop").exists():
    Path("stop").unlink()
    interrupts = []
    signal.signal(signal.SIGINT, lambda *_: interrupts.append(1))
    os.kill(int(os.environ["JPY_PARENT_PID"]), int(Path("signal").read_text()))
    while not interrupts:
        time.sleep(0.01)
"""
LAST_CELL = 'Path("last-cell-ran").write_text("")'
# The embedded model's 30 blocks, window estimator with max_removed 1: full, empty, single removals.
CELL_COALITIONS = 32


def _driver(command: list[str], log: Path) -> subprocess.Popen:
    """Start `lsi study` as a terminal would: a shell's background job ignores SIGINT, and so would
    its children, so SIGINT gets its default back. stderr goes to a file (a pipe would fill)."""
    with log.open("w") as err:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _last_line(log: Path) -> str:
    return log.read_text().replace("\r", "\n").strip().splitlines()[-1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_between_cells_starts_no_further_cell(tmp_path: Path, signum: int) -> None:
    """The driver's signal reaches the kernel as an interrupt; when the cell then running ends anyway
    (here its own handler takes the interrupt; an idle kernel ignores one), no further cell starts, and
    the notebook, which papermill records as finished without an error, is left not done."""
    (tmp_path / "pyproject.toml").write_text("")  # the project root: the notebook's working directory
    _notebook(tmp_path / "stop.ipynb", STOP_CELL)
    nb = nbformat.read(tmp_path / "stop.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(LAST_CELL))
    nbformat.write(nb, tmp_path / "stop.ipynb")
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"notebook": "stop.ipynb", "models": ["m"], "tasks": ["t"]}))
    (tmp_path / "stop").write_text("")
    (tmp_path / "signal").write_text(str(int(signum)))
    command = [LSI, "study", str(grid), "--no-figures"]
    driver = _driver(command, tmp_path / "stderr.txt")
    assert driver.wait(timeout=120) == 128 + signum, (tmp_path / "stderr.txt").read_text()
    assert _last_line(tmp_path / "stderr.txt") == STOPPED
    assert not _alive(int((tmp_path / "kernel.pid").read_text()))
    assert not (tmp_path / "last-cell-ran").exists()
    (cell,) = load_grid(grid).cells
    assert cell.output.exists() and not is_done(cell)
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "last-cell-ran").exists() and is_done(cell)


def _stop_after_a_new_part(command: list[str], parts: Path, signum: int, log: Path) -> list[psutil.Process]:
    """Start the driver; once its kernel has stored a new part, send the signal; return the processes
    the driver started (its kernel), after checking the exit status and the one line."""
    known = set(parts.glob("*.parquet"))
    driver = _driver(command, log)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 600
    while not set(parts.glob("*.parquet")) - known:
        assert driver.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "no new part within 10 minutes"
        seen |= {p.pid: p for p in psutil.Process(driver.pid).children(recursive=True)}
        time.sleep(0.1)
    driver.send_signal(signum)
    assert driver.wait(timeout=120) == 128 + signum, log.read_text()
    assert _last_line(log) == STOPPED
    assert seen, "no kernel seen"
    return list(seen.values())


def test_a_stopped_study_keeps_what_its_kernel_stored_and_a_rerun_scores_the_rest(tmp_path: Path) -> None:
    """The real cell notebook on the embedded model: SIGTERM, then SIGINT, each once the kernel has stored
    a part; the kernel stops within its chunk and is gone when the driver exits, every stored coalition
    is whole, the cell is not done; the rerun finishes it without scoring a stored coalition again."""
    (tmp_path / "pyproject.toml").write_text("")  # the project root: the notebooks' working directory
    grid = tmp_path / "grid.yaml"
    setting = {"granularity": "block", "dtype": "float32", "limit": 2, "max_removed": 1, "bootstrap": 10}
    grid.write_text(
        yaml.safe_dump(
            {
                "notebook": str(ROOT / "notebooks" / "01_layer_importance.ipynb"),
                "models": ["smollm2-135m"],
                "tasks": ["arc_easy"],
                "defaults": setting | {"results_dir": "results"},
            }
        )
    )
    (cell,) = load_grid(grid).cells
    store_path = cell.output.parent
    command = [LSI, "study", str(grid), "--no-figures"]
    stored: pd.Series | None = None
    for signum in (signal.SIGTERM, signal.SIGINT):
        kernels = _stop_after_a_new_part(command, store_path / "parts", signum, tmp_path / "stderr.txt")
        assert not [p for p in kernels if _alive(p.pid)]  # gone before the driver was
        assert check(store_path) == []  # every part readable, whole, no coalition twice
        frame = ScoreStore.open(store_path).frame().set_index("coalition")["scored_at"]
        assert stored is None or (frame[stored.index] == stored).all()
        stored = frame
        assert not is_done(cell)
        errors = [o for c in nbformat.read(cell.output, as_version=4).cells for o in c.get("outputs", [])]
        assert [o.ename for o in errors if o.output_type == "error"] == ["KeyboardInterrupt"]
    assert stored is not None and 1 < len(stored) < CELL_COALITIONS

    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert is_done(cell) and check(store_path) == []
    store = ScoreStore.open(store_path)
    raw = pd.concat([pq.read_table(p).to_pandas() for p in store.parts()])  # not deduplicated by frame()
    assert len(raw) == CELL_COALITIONS and raw["coalition"].is_unique
    kept = store.frame().set_index("coalition")["scored_at"]
    assert (kept[stored.index] == stored).all()  # what the stopped runs stored was not scored again
