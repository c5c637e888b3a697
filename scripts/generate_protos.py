"""Regenerate the Python stubs in src/workengine/v1 from protos/ (run after editing a .proto).

Usage: python scripts/generate_protos.py [--check]
With --check, generates into a temporary directory and fails if the committed stubs differ.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUTPUT_ROOT = ROOT / "src"
GENERATED_PACKAGE = Path("workengine") / "v1"
DESCRIPTOR_SET = GENERATED_PACKAGE / "workengine_descriptor_set.binpb"


def generate(out_root: Path) -> None:
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "workengine" / "v1").glob("*.proto")
    )
    # protoc.main() does not add the well-known-types include that `python -m grpc_tools.protoc` adds.
    well_known = str(resources.files("grpc_tools") / "_proto")
    (out_root / GENERATED_PACKAGE).mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        # Reflection serves this set, so comments reach `grpcurl describe`.
        f"--descriptor_set_out={out_root / DESCRIPTOR_SET}",
        "--include_source_info",
        "--include_imports",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_root / GENERATED_PACKAGE / "__init__.py").write_text(
        '"""Generated from protos/workengine/v1 by scripts/generate_protos.py. Do not edit."""\n'
    )


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / GENERATED_PACKAGE
        committed = OUTPUT_ROOT / GENERATED_PACKAGE
        names = sorted(p.name for p in fresh.iterdir() if p.is_file())
        committed_names = (
            sorted(p.name for p in committed.iterdir() if p.is_file()) if committed.exists() else []
        )
        _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
        extra = sorted(set(committed_names) - set(names))
        if mismatch or errors or extra:
            print(f"generated code is stale: differs={mismatch} missing={errors} extra={extra}")
            print("run: python scripts/generate_protos.py")
            return 1
    print("generated code matches protos/")
    return 0


def main() -> int:
    if "--check" in sys.argv[1:]:
        return check()
    target = OUTPUT_ROOT / GENERATED_PACKAGE
    if target.exists():
        shutil.rmtree(target)
    generate(OUTPUT_ROOT)
    print(f"generated {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
