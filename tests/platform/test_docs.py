"""Documents that are generated from code stay in step with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_matches_the_settings_classes() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_settings_table", ROOT / "scripts" / "gen_settings_table.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    expected = module.replace_in(readme, module.render())
    assert readme == expected, (
        "README settings table is stale: run `python scripts/gen_settings_table.py --write`"
    )


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
