"""lm-eval behind one adapter: the only module that imports lm-eval or patches it, with a clear line
when an internal it uses is missing and a warning outside the tested version."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lsi import lm_eval_adapter as adapter
from lsi.errors import UserError

PACKAGE = Path(__file__).resolve().parent.parent / "lsi"


def test_every_internal_it_uses_is_there() -> None:
    for dotted in adapter.INTERNALS:
        assert adapter.internal(dotted) is not None


def test_a_missing_internal_is_one_line_naming_the_tested_version() -> None:
    with pytest.raises(UserError, match=r"lacks lm_eval\.utils\.no_such_thing, .*lm-eval==0\.4\.13") as err:
        adapter.internal("lm_eval.utils:no_such_thing")
    assert "\n" not in str(err.value)


def test_an_untested_version_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter, "version", lambda: "9.9.9")
    adapter.check.cache_clear()
    try:
        with pytest.warns(UserWarning, match="lm-eval 9.9.9 is installed; lsi is tested with 0.4.13"):
            adapter.check()
    finally:
        adapter.check.cache_clear()


def test_the_tested_version_is_the_pinned_one() -> None:
    assert f'"lm-eval=={adapter.TESTED_VERSION}"' in (PACKAGE.parent / "pyproject.toml").read_text()


def test_no_other_module_imports_lm_eval_or_patches_with_mock() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.startswith("unittest") or (
                    name.startswith("lm_eval") and path.name != "lm_eval_adapter.py"
                ):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_quiet_restores_what_it_replaced() -> None:
    import lm_eval.api.task
    import lm_eval.utils

    before = (lm_eval.api.task.tqdm, lm_eval.utils.apply_template)
    with adapter.quiet():
        assert lm_eval.utils.apply_template is not before[1]
    assert (lm_eval.api.task.tqdm, lm_eval.utils.apply_template) == before
