"""Two releases of WorkEngine on one database, as a rolling upgrade has them: each release's
`workengine serve` and `workengine migrate`, and its example daemon, run from its own source
tree, with this environment's interpreter and packages."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Release:
    """The code of one release: `root` holds its `src` and `examples`."""

    name: str
    root: Path

    def env(self) -> dict[str, str]:
        # Only this release's package on the path (the venv's `workengine` script imports
        # whichever package comes first). WORKENGINE_HTTP_PORT=0: two replicas on one host
        # cannot both take the HTTP side port's default, and a release without the port
        # ignores the variable, so this works on both sides of the release that adds it.
        return clean_env(PYTHONPATH=str(self.root / "src"), WORKENGINE_HTTP_PORT="0")

    def check_runs_its_own_code(self) -> None:
        """A replica said to run this release must import this release's package."""
        imported = subprocess.run(
            [sys.executable, "-c", "import workengine; print(workengine.__file__)"],
            env=self.env(), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert Path(imported.stdout.strip()).is_relative_to(self.root / "src"), imported.stdout

    def serve(self, database_url: str, *args: str) -> ServeProcess:
        return ServeProcess("--database-url", database_url, *args, env=self.env())

    def migrate(self, database_url: str) -> str:
        """`workengine migrate` to this release's head; returns what it printed."""
        migrated = subprocess.run(
            [WORKENGINE, "migrate", "--database-url", database_url],
            env=self.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert migrated.returncode == 0, f"{self.name}: migrate failed:\n{migrated.stdout}{migrated.stderr}"
        return migrated.stdout + migrated.stderr

    def daemon(self, target: str, name: str, *args: str) -> list[str]:
        """The command of this release's example daemon, claiming for `target`'s fleet."""
        script = self.root / "examples" / "python_daemon.py"
        return [sys.executable, str(script), "--target", target, "--name", name, *args]


THIS_RELEASE = Release("this code", ROOT)


def logged_errors(server: ServeProcess) -> list[str]:
    """The lines a replica logged at ERROR or above, and tracebacks: a call that failed inside
    it. In text or in JSON lines, whichever format the release logs in."""
    return [line for line in server.lines if _is_error(line)]


def _is_error(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
    if not isinstance(record, dict):
        return False
    levels = [str(v).upper() for k, v in record.items() if "level" in k.lower() or "severity" in k.lower()]
    return any(level in ("ERROR", "CRITICAL") for level in levels)
