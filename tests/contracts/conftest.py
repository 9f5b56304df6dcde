"""Make `scripts/` importable as top-level modules, the way mypy and `python scripts/x.py` see them."""

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
