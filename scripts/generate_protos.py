"""Regenerate every client's stubs from protos/ (run after editing a .proto).

Usage: python scripts/generate_protos.py [--check]

- Python: src/workengine/v1 (grpcio-tools' protoc), plus the descriptor set with source info
  that server reflection serves.
- TypeScript: clients/typescript/src/gen (buf generate with buf.gen.yaml and
  @bufbuild/protoc-gen-es); needs `npm ci` in clients/typescript first.
- The blocking Python client, src/workengine/client/sync.py, from the asyncio one (aio.py),
  the way unasync does it: the two have the same methods, so only one is written by hand.

With --check, generates both into a temporary directory and fails if the committed stubs differ.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
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
# The generated package is a public API: other Python projects use the raw stubs from here.
PACKAGE_INIT = '''"""WorkEngine's v1 protocol for Python: the generated messages and gRPC stubs (public API).

    import grpc
    from workengine.v1 import work_engine_service_pb2 as pb, work_engine_service_pb2_grpc as pb_grpc

    stub = pb_grpc.WorkEngineServiceStub(grpc.insecure_channel("localhost:50051"))
    task = stub.GetTask(pb.GetTaskRequest(task_id="t-1"), timeout=10).task

Modules: work_engine_service_pb2 (every request and response, CompletionStatus,
ExecuteOutcome), work_engine_service_pb2_grpc (WorkEngineServiceStub for clients,
WorkEngineServiceServicer and add_WorkEngineServiceServicer_to_server for fakes in tests;
grpc.aio channels work too), task_pb2 and orchestrator_pb2 (the resources and their enums),
each with a .pyi for type checkers, and workengine_descriptor_set.binpb (every file with
its comments, for tools). For deadlines, retries and typed helpers use `workengine.client`.

Generated from protos/workengine/v1 by scripts/generate_protos.py. Do not edit.
"""

__all__ = ["orchestrator_pb2", "task_pb2", "work_engine_service_pb2", "work_engine_service_pb2_grpc"]
'''
TYPESCRIPT_GENERATED = Path("clients") / "typescript" / "src" / "gen"
PROTOC_GEN_ES = ROOT / "clients" / "typescript" / "node_modules" / ".bin" / "protoc-gen-es"
ASYNC_CLIENT = ROOT / "src" / "workengine" / "client" / "aio.py"
SYNC_CLIENT = ROOT / "src" / "workengine" / "client" / "sync.py"

# aio.py -> sync.py, in order; each must match at least once, so a drift in aio.py that the
# rules no longer cover fails generation instead of producing a half-async sync client.
UNASYNC_RULES = (
    (
        '"""The asyncio client. Hand-written; sync.py is generated from it by scripts/generate_protos.py."""',
        '"""The blocking client. Generated from aio.py by scripts/generate_protos.py: edit aio.py."""',
    ),
    (
        "An asyncio WorkEngine client over grpc.aio; create it inside the running event loop.",
        "A blocking WorkEngine client over grpc.",
    ),
    ("import asyncio\n", "import time\n"),
    ("from collections.abc import AsyncIterator, Iterable", "from collections.abc import Iterable, Iterator"),
    ("AsyncIterator[", "Iterator["),
    ("for item in getattr(page, items):\n                yield item\n", "yield from getattr(page, items)\n"),
    ("AsyncWorkEngineClient", "WorkEngineClient"),
    ("grpc.aio.", "grpc."),
    ("__aenter__", "__enter__"),
    ("__aexit__", "__exit__"),
    ("async with ", "with "),
    ("async for ", "for "),
    ("async def ", "def "),
    ("await ", ""),
    ("asyncio.sleep(", "time.sleep("),
)


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
    (out_root / GENERATED_PACKAGE / "__init__.py").write_text(PACKAGE_INIT)


def generate_typescript(out_root: Path | None = None) -> None:
    """Runs buf.gen.yaml; with out_root, writes under it instead of the work tree."""
    buf = shutil.which("buf")
    if buf is None:
        raise SystemExit("buf not found: pip install -e '.[dev]' (it brings buf-bin)")
    if not PROTOC_GEN_ES.exists():
        raise SystemExit("protoc-gen-es not found: run `npm ci` in clients/typescript first")
    command = [buf, "generate", "--template", "buf.gen.yaml"]
    if out_root is not None:
        command += ["-o", str(out_root)]
    subprocess.run(command, cwd=ROOT, check=True)


def render_sync_client() -> str:
    """sync.py's text: aio.py with the UNASYNC_RULES applied, then formatted by ruff."""
    text = ASYNC_CLIENT.read_text()
    for old, new in UNASYNC_RULES:
        if old not in text:
            raise SystemExit(f"unasync rule no longer matches aio.py: {old!r}")
        text = text.replace(old, new)
    ruff = shutil.which("ruff")
    if ruff is None:
        raise SystemExit("ruff not found: pip install -e '.[dev]'")
    formatted = subprocess.run(
        [ruff, "format", "--stdin-filename", str(SYNC_CLIENT), "-"],
        input=text, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return formatted.stdout


def _tree(root: Path) -> list[str]:
    """Every file under root, less Python's bytecode caches (made by importing, not generated)."""
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def _stale(fresh: Path, committed: Path) -> list[str]:
    """Files that differ, are missing or are extra in `committed` compared with `fresh`."""
    names = _tree(fresh)
    _, mismatch, missing = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    extra = sorted(set(_tree(committed)) - set(names))
    return [*mismatch, *missing, *extra]


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        generate_typescript(Path(tmp))
        stale = {
            str(generated): _stale(Path(tmp) / generated, root / generated)
            for root, generated in ((OUTPUT_ROOT, GENERATED_PACKAGE), (ROOT, TYPESCRIPT_GENERATED))
        }
    if SYNC_CLIENT.read_text() != render_sync_client():
        stale[str(SYNC_CLIENT.relative_to(ROOT))] = ["differs from aio.py after unasync"]
    stale = {directory: files for directory, files in stale.items() if files}
    if stale:
        print(f"generated code is stale: {stale}")
        print("run: python scripts/generate_protos.py")
        return 1
    print("generated code (Python and TypeScript stubs, sync client) is up to date")
    return 0


def main() -> int:
    if "--check" in sys.argv[1:]:
        return check()
    target = OUTPUT_ROOT / GENERATED_PACKAGE
    if target.exists():
        shutil.rmtree(target)
    generate(OUTPUT_ROOT)
    print(f"generated {target.relative_to(ROOT)}")
    generate_typescript()
    print(f"generated {TYPESCRIPT_GENERATED}")
    SYNC_CLIENT.write_text(render_sync_client())
    print(f"generated {SYNC_CLIENT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
