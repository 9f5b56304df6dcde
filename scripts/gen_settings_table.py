"""Render the README's settings table from the settings classes themselves, so it cannot drift.

python scripts/gen_settings_table.py          # print the table
python scripts/gen_settings_table.py --write  # replace it in README.md between the markers
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"
# Where each service declares its settings (a subclass of services.common.settings.ServiceSettings).
SETTINGS = {
    "tenants": "services.tenants.server",
    "marketdata": "services.marketdata.server",
    "strategy": "services.strategy.server",
    "execution": "services.execution.server",
    "dashboard": "services.dashboard.settings",
}


def _rows(cls: type[BaseSettings], skip: set[str]) -> list[str]:
    rows = []
    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        default = field.default
        shown = f"`{default}`" if default not in ("", None) else "—"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description or ''} |")
    return rows


def render() -> str:
    sys.path.insert(0, str(ROOT))
    from services.common.settings import ServiceSettings

    common = set(ServiceSettings.model_fields)
    lines = ["Every service reads these from its environment (unset means the default):", ""]
    lines += ["| variable | default | meaning |", "|---|---|---|", *_rows(ServiceSettings, set())]
    for service, module in SETTINGS.items():
        cls = importlib.import_module(module).Settings
        own = _rows(cls, common)
        if own:
            lines += ["", f"Only `{service}`:", "", "| variable | default | meaning |", "|---|---|---|", *own]
    return "\n".join(lines)


def replace_in(text: str, table: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main() -> int:
    table = render()
    if "--write" in sys.argv:
        README.write_text(replace_in(README.read_text(), table))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
