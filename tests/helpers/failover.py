"""Active and standby ``lea-backend serve`` processes on one PostgreSQL database (tests, bench/failover.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers.postgres import LocalPostgres

REPO = Path(__file__).resolve().parents[2]
SERVING = re.compile(r"^lea-backend: serving (?P<store>.+) on (?P<url>https?://\S+)", re.M)
STANDBY = re.compile(r"^lea-backend: standby for (?P<store>.+) on (?P<url>https?://\S+):", re.M)


@dataclass
class PgServer:
    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    url: str = ""

    def out(self) -> str:
        return self.stdout.read_text(errors="replace") if self.stdout.exists() else ""

    def err(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def describe(self) -> str:
        return f"{self.name} (status {self.process.poll()})\n--- stdout\n{self.out()}--- stderr\n{self.err()[-3000:]}"

    def wait_line(self, pattern: re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = pattern.search(self.out())
            if match:
                return match
            if self.process.poll() is not None:
                match = pattern.search(self.out())
                if match:
                    return match
                raise AssertionError(f"the server exited\n{self.describe()}")
            time.sleep(0.02)
        raise AssertionError(f"no {pattern.pattern!r} line in time\n{self.describe()}")

    def wait_active(self, timeout: float = 30.0) -> str:
        self.url = self.wait_line(SERVING, timeout)["url"]
        return self.url

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"{self.name} did not stop on SIGTERM\n{self.describe()}") from None
        return self.process.returncode


def start_pg_server(
    base: Path, name: str, postgres: LocalPostgres, database: str, *, standby: bool = False,
    port: int = 0, extra: tuple[str, ...] = (), auth: bool = False,
) -> PgServer:
    """``lea-backend serve --store postgresql://... [--standby]`` with a data directory of its own."""
    base.mkdir(parents=True, exist_ok=True)
    stdout, stderr = base / f"{name}.out", base / f"{name}.err"
    command = [
        sys.executable, "-m", "backend", "serve", "--data-dir", str(base / name), "--port", str(port),
        *([] if auth else ["--insecure-no-auth"]), "--store", postgres.url(database),
        "--store-password-file", str(postgres.password_file), *(["--standby"] if standby else []), *extra,
    ]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=REPO, env=environment,
            start_new_session=True,
        )
    server = PgServer(name, process, stdout, stderr)
    if standby:
        server.url = server.wait_line(STANDBY)["url"]
    else:
        server.wait_active()
    return server


def healthz(url: str, timeout: float = 2.0) -> tuple[int, dict[str, object]]:
    response = httpx.get(url + "/healthz", timeout=timeout)
    return response.status_code, response.json()

