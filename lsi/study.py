"""A study grid (models x tasks x settings) run in batch through papermill.

The paper's tables come from one notebook run once per (model, task, setting). This expands a YAML
grid into those cells, executes each one with papermill, and keeps each executed notebook beside the
score store it fed, so the record of a number lives next to the number. A rerun skips the cells that
already finished with the same parameters, which makes an interrupted grid resumable. A failed cell
does not stop the others. At the end, the figures notebook redraws the figures from the results.

Relative paths in a grid (notebooks, `results_dir`, `figures_dir`) are relative to the project
root. That is the nearest folder above the YAML that holds a `pyproject.toml`, or else the YAML's
own folder. Every notebook runs with the root as its working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lsi.config import DEFAULTS, RunConfig
from lsi.errors import UserError
from lsi.notebook_outputs import compact_outputs

# The cell notebook's parameters with their defaults: the fields of the run configuration.
PARAMETERS: dict[str, object] = DEFAULTS.parameters()
NOTEBOOK = "notebooks/01_layer_importance.ipynb"
FIGURES_NOTEBOOK = "notebooks/02_paper_figures.ipynb"
FIGURES_DIR = "figures"
TOP_KEYS = ("notebook", "figures_notebook", "figures_dir", "models", "tasks", "defaults", "settings")
DEFAULT_KEYS = tuple(k for k in PARAMETERS if k not in ("model", "task"))
SETTING_KEYS = (*DEFAULT_KEYS, "models", "tasks")
# ipykernel warns on stderr at every start about TCP without encryption (local kernels); keep errors only.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


@dataclass
class Cell:
    """One notebook run: its parameters and where its executed notebook is kept."""

    parameters: dict[str, object]
    output: Path

    @property
    def label(self) -> str:
        p = self.parameters
        return (
            f"{p['model']} | {p['task']} | {p['granularity']}-{p['dtype']}-limit{p['limit']} | "
            f"{p['estimator']}-{p['value']}-b{p['budget']}-s{p['seed']}"
        )


@dataclass
class Study:
    """A loaded grid: its cells in run order, and what draws the figures afterwards."""

    path: Path
    root: Path
    notebook: Path
    figures_notebook: Path
    figures_dir: str
    cells: list[Cell]


@dataclass
class Outcome:
    """What happened to one notebook: ran, done (skipped, already complete), failed or todo (dry run)."""

    label: str
    output: Path
    status: str
    seconds: float = 0.0
    error: str | None = None


@dataclass
class StudyReport:
    """Every cell's outcome, so a caller (the CLI, a notebook, a test) decides what to print."""

    study: Study
    cells: list[Outcome]
    figures: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in (*self.cells, *self.figures) if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        """1 when any notebook failed, so a batch job or `make` sees it."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        rel = self._relative
        counts = {s: sum(o.status == s for o in self.cells) for s in ("ran", "done", "failed", "todo")}
        if self.dry_run:
            lines = [
                f"{self.study.path}: {len(self.cells)} cells, {counts['done']} done, {counts['todo']} to run"
            ]
            lines += [f"  {o.status:4s}  {o.label}  -> {rel(o.output)}" for o in self.cells]
            lines += [f"  figures  {o.label}  -> {rel(o.output)}" for o in self.figures]
        else:
            lines = [
                f"{self.study.path}: {counts['ran']} ran, {counts['done']} skipped (done), "
                f"{counts['failed']} failed"
            ]
            for o in self.failed:
                lines.append(f"FAILED {o.label}: {o.error}")
                if o.output.exists():
                    lines.append(f"  partial notebook: {rel(o.output)}")
            lines += [f"figures ({o.status}): {rel(o.output)}" for o in self.figures if o.status != "failed"]
        return "\n".join(lines + self.notes)

    def _relative(self, path: Path) -> Path:
        try:
            return path.relative_to(Path.cwd())
        except ValueError:
            return path


def project_root(grid: Path) -> Path:
    """The nearest folder above the grid holding a pyproject.toml, or else the grid's own folder."""
    folder = Path(grid).resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / "pyproject.toml").exists():
            return candidate
    return folder


def load_grid(path: Path) -> Study:
    """Read and check a grid YAML; expand it into cells (model, then task, then setting)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping with keys: {', '.join(TOP_KEYS)}")
    _check_keys(path, "the grid", data, TOP_KEYS)
    models = _names(path, data, "models")
    tasks = _names(path, data, "tasks")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise UserError(f"{path}: defaults must be a mapping")
    _check_keys(path, "defaults", defaults, DEFAULT_KEYS)
    settings = data.get("settings") or [{}]
    if not isinstance(settings, list) or not all(isinstance(s, dict) for s in settings):
        raise UserError(f"{path}: settings must be a list of mappings")
    root = project_root(path)
    notebook = root / data.get("notebook", NOTEBOOK)
    cells: list[Cell] = []
    for model in models:
        for task in tasks:
            for number, setting in enumerate(settings, 1):
                where = f"setting {number}"
                _check_keys(path, where, setting, SETTING_KEYS)
                if model not in _restriction(path, setting, "models", models, where):
                    continue
                if task not in _restriction(path, setting, "tasks", tasks, where):
                    continue
                given = {k: v for k, v in (defaults | setting).items() if k not in ("models", "tasks")}
                parameters = PARAMETERS | given | {"model": model, "task": task}
                config = _check_values(path, where, parameters)
                cells.append(Cell(parameters, _output(root, notebook, config)))
    _check_distinct(path, cells)
    return Study(
        path=path,
        root=root,
        notebook=notebook,
        figures_notebook=root / data.get("figures_notebook", FIGURES_NOTEBOOK),
        figures_dir=str(data.get("figures_dir", FIGURES_DIR)),
        cells=cells,
    )


def _restriction(path: Path, setting: dict, key: str, grid: list[str], where: str) -> list[str]:
    """The setting's own `models` or `tasks` list (a subset of the grid's), or the grid's."""
    if setting.get(key) is None:
        return grid
    only = _names(path, setting, key, where)
    unknown = [name for name in only if name not in grid]
    if unknown:
        raise UserError(
            f"{path}: {where} restricts to {key} not in the grid: {', '.join(unknown)} "
            f"(the grid's {key}: {', '.join(grid)})"
        )
    return only


def _check_keys(path: Path, where: str, mapping: dict, allowed: tuple[str, ...]) -> None:
    unknown = [str(k) for k in mapping if k not in allowed]
    if unknown:
        raise UserError(
            f"{path}: unknown key {', '.join(repr(k) for k in unknown)} in {where}; "
            f"allowed: {', '.join(allowed)}"
        )


def _names(path: Path, mapping: dict, key: str, where: str = "the grid") -> list[str]:
    names = mapping.get(key)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise UserError(f"{path}: {key} in {where} must be a non-empty list of names")
    return names


def _check_values(path: Path, where: str, p: dict[str, object]) -> RunConfig:
    """Catch a typo before a long grid starts, not in its tenth hour."""
    try:
        return RunConfig.from_mapping(p)
    except UserError as err:
        raise UserError(f"{path}: {where}: {err}") from None


def _output(root: Path, notebook: Path, config: RunConfig) -> Path:
    """The executed notebook lies in the score store it fed, named after the estimate it made."""
    store = root / config.store_path()
    name = f"{notebook.stem}-{config.estimator}-{config.value.value}-b{config.budget}-s{config.seed}.ipynb"
    return store / name


def _check_distinct(path: Path, cells: list[Cell]) -> None:
    seen: dict[Path, Cell] = {}
    for cell in cells:
        other = seen.setdefault(cell.output, cell)
        if other is not cell:
            differ = [k for k in PARAMETERS if other.parameters[k] != cell.parameters[k]]
            raise UserError(
                f"{path}: two settings make the same cell {cell.label} (they differ only in "
                f"{', '.join(differ) or 'nothing'}); its notebook and estimate can hold one: "
                "give one of them another results_dir"
            )


# Where a cell's forward passes ran: not part of what it computed.
PLACEMENT = ("backend", "address", "workers", "gpus_per_worker", "threads")


def _without_placement(parameters: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in parameters.items() if k not in PLACEMENT}


def is_done(cell: Cell) -> bool:
    """The cell's notebook exists, recorded the same parameters, and finished without an error."""
    try:
        import nbformat

        nb = nbformat.read(cell.output, as_version=4)
    except Exception:  # missing, torn or not a notebook: run it
        return False
    meta = nb.metadata.get("papermill", {})
    errors = any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    wanted = json.loads(json.dumps(cell.parameters))
    recorded = dict(meta.get("parameters") or {})
    # A parameter added to the notebook after a run, asked for at its default, is what that run used.
    recorded = {k: v for k, v in wanted.items() if k not in recorded and v == PARAMETERS.get(k)} | recorded
    same = _without_placement(recorded) == _without_placement(wanted)
    return same and bool(meta.get("end_time")) and not meta.get("exception") and not errors


def run_grid(
    study: Study | Path,
    force: bool = False,
    dry_run: bool = False,
    figures: bool = True,
    progress: bool = True,
    runtime: dict[str, object] | None = None,
) -> StudyReport:
    """Run every cell not yet done (all with `force`), then the figures notebook once per results folder.

    `runtime`: where the cells' forward passes run (backend, address, workers, ...), over the grid's
    values; it does not change what a cell computes, so a cell done elsewhere stays done. Cells run
    one after another, each on every worker of the cluster; with the Ray backend and no address, one
    local instance serves them all."""
    from tqdm.auto import tqdm

    runtime = dict(runtime or {})

    if not isinstance(study, Study):
        study = load_grid(study)
    report = StudyReport(study, [], dry_run=dry_run)
    with tempfile.TemporaryDirectory(prefix="lsi-study-") as scratch:
        if dry_run:
            for cell in study.cells:
                status = "done" if is_done(cell) else "todo"
                report.cells.append(Outcome(cell.label, cell.output, status))
            if force:
                report.notes.append(f"--force: all {len(study.cells)} cells would run")
        else:
            source = _source(study.notebook, Path(scratch))
            bar = tqdm(study.cells, desc="study", unit="cell", disable=not progress)
            instance = _local_instance(study, runtime)
            for cell in bar:
                bar.set_postfix_str(cell.label, refresh=True)
                if not force and is_done(cell):
                    report.cells.append(Outcome(cell.label, cell.output, "done"))
                    continue
                parameters = cell.parameters | runtime
                outcome = _execute(cell.label, source, cell.output, parameters, study.root)
                if outcome.status == "failed":
                    bar.write(f"failed: {cell.label}: {outcome.error}")
                report.cells.append(outcome)
            bar.close()
            if instance is not None:
                instance.shutdown()
        if figures:
            _figures(study, report, Path(scratch))
        else:
            report.notes.append("figures: not drawn (--no-figures)")
    return report


def _local_instance(study: Study, runtime: dict[str, object]) -> Any:  # noqa: ANN401 - the ray module
    """Start one local Ray instance for every Ray cell without an address, and point them at it."""

    def wanted(cell: Cell) -> bool:
        merged = cell.parameters | runtime
        return merged.get("backend") == "ray" and merged.get("address") is None

    if not any(wanted(cell) for cell in study.cells):
        return None
    from lsi.cluster import connect

    ray, _ = connect(None)
    runtime["address"] = ray.get_runtime_context().gcs_address
    return ray


def _figures(study: Study, report: StudyReport, scratch: Path) -> None:
    """Once per results folder that has a finished cell, with that folder and the grid's figures_dir."""
    if not _exists(study.figures_notebook):
        report.notes.append(f"figures: not drawn (no notebook {study.figures_notebook})")
        return
    finished = [o.output for o in report.cells if o.status in ("ran", "done")]
    folders = dict.fromkeys(str(c.parameters["results_dir"]) for c in study.cells)
    for results_dir in folders:
        folder = study.root / results_dir
        output = folder / "notebooks" / f"{study.figures_notebook.stem}.ipynb"
        label = f"{study.figures_notebook.name} (results_dir={results_dir}, figures_dir={study.figures_dir})"
        if report.dry_run:
            report.figures.append(Outcome(label, output, "todo"))
        elif not any(folder in path.parents for path in finished):
            report.notes.append(f"figures: not drawn for {results_dir} (no finished cell)")
        else:
            source = _source(study.figures_notebook, scratch)
            parameters = {"results_dir": results_dir, "figures_dir": study.figures_dir}
            report.figures.append(_execute(label, source, output, parameters, study.root))


def _exists(notebook: Path) -> bool:
    return notebook.exists() or notebook.with_suffix(".py").exists()


def _source(notebook: Path, scratch: Path) -> Path:
    """The notebook to execute: its jupytext `.py` source when there is one (the .py is the source),
    converted into the scratch folder, or else the `.ipynb` itself."""
    script = notebook.with_suffix(".py")
    if not script.exists():
        if not notebook.exists():
            raise UserError(f"no notebook {notebook} (nor its jupytext source {script.name})")
        return notebook
    import jupytext
    import nbformat

    converted = scratch / f"{notebook.stem}.ipynb"
    nbformat.write(jupytext.read(script), converted)
    return converted


def _execute(label: str, source: Path, output: Path, parameters: dict[str, object], root: Path) -> Outcome:
    """Execute one notebook; any failure becomes an Outcome, never an exception, so the grid goes on."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        with _KernelInterrupts(output) as interrupts:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=parameters,
                kernel_name="python3",
                language="python",
                progress_bar=False,
                cwd=str(root),
                extra_arguments=KERNEL_ARGUMENTS,
                kernel_manager_class=interrupts.manager_class(),
                on_cell_execute=interrupts.check,
            )
    except papermill.PapermillExecutionError as err:
        message = _one_line(f"{err.ename}: {err.evalue}")
        return Outcome(label, output, "failed", time.perf_counter() - start, message)
    except Exception as err:  # a kernel that died or never started, an unreadable notebook, ...
        message = _one_line(f"{type(err).__name__}: {err}")
        return Outcome(label, output, "failed", time.perf_counter() - start, message)
    compact_outputs(output)  # the figures notebook writes every figure to figures_dir; records stay small
    return Outcome(label, output, "ran", time.perf_counter() - start)


class _Stopped(Exception):
    """Raised in place of a notebook's next cell once a stop signal has come."""


class _KernelInterrupts:
    """SIGINT and SIGTERM to `lsi study`, forwarded to the notebook's kernel as Jupyter's interrupt.

    jupyter_client starts the kernel in a session of its own, so neither a Ctrl-C at the terminal nor a
    scheduler's SIGTERM to the driver reaches it. Left alone, the driver's KeyboardInterrupt unwinds
    papermill, whose shutdown interrupts the kernel and at once asks it to exit (SIGTERM 2.5 s later),
    and a stop between cells leaves a notebook recorded as done. Here the signal becomes a
    KeyboardInterrupt in the kernel (the scorer has stored every chunk it finished; another signal
    interrupts again), no further cell starts, papermill shuts the stopped kernel down, the notebook is
    recorded as not done, and only then does the signal go on to the handler it was meant for (the
    CLI's: exit 130 or 143). A signal the driver ignores (a background job's SIGINT) stays ignored.
    """

    def __init__(self, output: Path) -> None:
        self.output = output
        self.received: list[int] = []
        self.kernels: list[Any] = []  # the jupyter_client kernel managers started meanwhile
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _KernelInterrupts:
        if threading.current_thread() is threading.main_thread():  # only there may handlers change
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) not in (signal.SIG_IGN, None):  # None: not set from Python
                    self.previous[signum] = signal.signal(signum, self._forward)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.received:
            _record_interrupted(self.output)
            signal.raise_signal(self.received[-1])

    def _forward(self, signum: int, _frame: object) -> None:
        self.received.append(signum)
        for kernel in self.kernels:  # what interrupt_kernel does for ipykernel: SIGINT to its group
            pgid = getattr(kernel.provisioner, "pgid", None)
            if pgid and pgid != os.getpgrp():  # never this driver's own group
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.killpg(pgid, signal.SIGINT)

    def check(self, **_cell: object) -> None:
        """Before each cell: none starts after a stop (an idle kernel ignores the interrupt)."""
        if self.received:
            raise _Stopped(f"stopped by signal {self.received[-1]}")

    def manager_class(self) -> type:
        """papermill's kernel manager, which makes the kernel it starts known to `_forward`."""
        from jupyter_client.manager import AsyncKernelManager

        kernels = self.kernels

        class Recorded(AsyncKernelManager):
            def __init__(self, **kwargs: Any) -> None:  # noqa: ANN401 - traitlets options
                super().__init__(**kwargs)
                kernels.append(self)

        return Recorded


def _record_interrupted(output: Path) -> None:
    """Mark the executed notebook as ended by an exception, so that `is_done` reruns its cell: a stop
    between cells leaves a notebook that papermill records as finished without an error."""
    import nbformat

    try:
        nb = nbformat.read(output, as_version=4)
    except Exception:  # missing or torn: not done already
        return
    nb.metadata.setdefault("papermill", {})["exception"] = True
    nbformat.write(nb, output)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else "unknown error"
    return line if len(line) <= 300 else line[:297] + "..."
