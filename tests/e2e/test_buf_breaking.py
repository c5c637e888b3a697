"""buf.yaml's breaking rules catch a wire-incompatible proto change (what .ci/run's
`buf breaking` relies on), and accept an additive one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.tools import extra_tool

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PROTO = Path("protos") / "workengine" / "v1" / "work_engine_service.proto"


def _module_copy(destination: Path) -> Path:
    destination.mkdir()
    shutil.copy(ROOT / "buf.yaml", destination / "buf.yaml")
    shutil.copytree(ROOT / "protos", destination / "protos")
    return destination


def _breaking(changed: Path, baseline: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [extra_tool("buf"), "breaking", str(changed), "--against", str(baseline)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _edit(module: Path, old: str, new: str) -> None:
    path = module / SERVICE_PROTO
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_changing_a_field_type_is_reported_as_breaking(tmp_path: Path) -> None:
    baseline, changed = _module_copy(tmp_path / "baseline"), _module_copy(tmp_path / "changed")
    _edit(changed, "  int32 attempt = 2;", "  int64 attempt = 2;")

    result = _breaking(changed, baseline)

    assert result.returncode != 0
    assert 'changed type from "int32" to "int64"' in result.stdout + result.stderr


def test_adding_a_field_is_not_breaking(tmp_path: Path) -> None:
    baseline, changed = _module_copy(tmp_path / "baseline"), _module_copy(tmp_path / "changed")
    _edit(changed, "  bool keep_open = 6;\n", "  bool keep_open = 6;\n  // New.\n  string note = 99;\n")

    result = _breaking(changed, baseline)

    assert result.returncode == 0, result.stdout + result.stderr
