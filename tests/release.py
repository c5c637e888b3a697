"""The previous release, as deploy/previous-release records it: its commit, its migrations, and
its code extracted to run beside this one (docs/development.md, "Migrations and rolling
upgrades").

The commit comes from git history, so a checkout without it (no git, a shallow clone, an
unpacked archive) cannot run these tests: they are skipped there, except in CI (CI set), where
the clone has the history and a missing commit is an error to fix, not a test to skip.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "deploy" / "previous-release"
VERSIONS = "src/workengine/store/migrations/versions"
# What the previous release's replica and daemons need: its package and its example daemon;
# its pyproject.toml says which dependencies it expects.
EXTRACTED = ("src", "examples", "pyproject.toml")


def recorded_commit() -> str:
    """The commit id deploy/previous-release records (the first word of its first line that is
    not a comment)."""
    for line in RECORD.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            return words[0]
    raise AssertionError(f"{RECORD} records no commit")


def unavailable(message: str) -> None:
    """Skips, or fails in CI, where the history is there and a skip would hide the check."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, timeout=60, check=False)


def previous_release() -> str:
    """The previous release's full commit id, checked to be in this clone's history."""
    commit = recorded_commit()
    if shutil.which("git") is None:
        unavailable("git is not installed: the previous release's code comes from the history")
    found = git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if found.returncode != 0:
        unavailable(
            f"commit {commit} (deploy/previous-release) is not in this clone: "
            "fetch the full history (git fetch --unshallow)"
        )
    return found.stdout.decode().strip()


def tolerates_added_columns(commit: str) -> bool:
    """Whether `commit`'s code survives a column added to a table under its prepared statements
    (see workengine.store.runner.row_type_changed); releases before it fail calls instead."""
    found = git("grep", "-q", "-e", "def row_type_changed", commit, "--", "src/workengine/store")
    return found.returncode == 0


def released_migrations(commit: str) -> dict[str, bytes]:
    """The migration files `commit` has, by path, with their contents."""
    listed = git("ls-tree", "--name-only", f"{commit}:{VERSIONS}")
    assert listed.returncode == 0, listed.stderr.decode()
    files = {}
    for name in listed.stdout.decode().split():
        if name.endswith(".py") and name[0].isdigit():
            shown = git("show", f"{commit}:{VERSIONS}/{name}")
            assert shown.returncode == 0, shown.stderr.decode()
            files[f"{VERSIONS}/{name}"] = shown.stdout
    return files


def extract(commit: str, destination: Path) -> Path:
    """Writes the commit's package, example daemon and pyproject.toml under `destination`
    (git archive: no worktree left behind) and returns it; its `src` goes on PYTHONPATH."""
    archive = git("archive", "--format=tar", commit, *EXTRACTED)
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
            tar.extractall(destination, filter="data")
        else:  # our own history: nothing in it writes outside `destination`
            tar.extractall(destination)
    return destination


def missing_dependencies(tree: Path) -> list[str]:
    """The previous release's dependencies that this environment does not satisfy: it runs with
    this environment's packages, which are this release's."""
    project = tomllib.loads((tree / "pyproject.toml").read_text())["project"]
    missing = []
    for line in project.get("dependencies", []):
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(f"{line} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            missing.append(f"{line} (installed: {installed})")
    return missing
