"""Generate Python modules, .pyi stubs and gRPC stubs from proto/ into gen/.

One command (`make proto`). The output is not committed: every entry point (`make run`, `make test`)
regenerates it when a .proto file is newer than the last generation, so it can never be stale.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "gen"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        print("no .proto files under proto/", file=sys.stderr)
        return 1
    shutil.rmtree(OUT / "tradebot", ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *protos,
    ]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return code
    # Namespace packages would work, but explicit __init__.py files keep mypy and tools simple.
    for folder in [OUT / "tradebot", *(p for p in (OUT / "tradebot").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    print(f"generated {len(protos)} proto files into {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
