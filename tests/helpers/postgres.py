"""A throwaway PostgreSQL 15 server: ``initdb`` + ``pg_ctl`` in a temporary directory, on a free
loopback port, as an unprivileged user (PostgreSQL refuses to run as root, and CI runs as root).

Used by the tests (``postgres_server`` / ``pg_url`` in tests/conftest.py), by ``bench/append.py
--store postgresql://`` (``--store pg`` starts one) and by ``scripts/run-server-pg``.

The server accepts TCP on 127.0.0.1 only, with scram-sha-256 passwords: the superuser is ``lea``
and its password is in ``password_file`` (mode 0600, libpq's passfile format), so the tests go
through the same password path a lab's server does. Unix sockets live in the temporary directory.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Where Debian's postgresql-15 puts its programs (LEA_PG_BIN overrides; then any other installed
#: version, newest first, then the PATH).
DEBIAN_PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "lea"
#: The unprivileged user the server runs as when this process is root.
RUN_AS = "nobody"


def pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    candidates = [Path(os.environ["LEA_PG_BIN"])] if os.environ.get("LEA_PG_BIN") else []
    candidates.append(DEBIAN_PG_BIN)
    # A release without 15 ships its own (newer) version: the highest one installed.
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """One PostgreSQL cluster of its own; ``start()`` then ``stop()`` (also a context manager)."""

    def __init__(
        self,
        *,
        synchronous_commit: str = "on",
        fsync: bool = True,
        port: int | None = None,
        base: Path | None = None,
    ) -> None:
        binaries = pg_bin()
        if binaries is None:
            raise RuntimeError(
                "PostgreSQL 15 is not installed (no initdb/pg_ctl in /usr/lib/postgresql/15/bin or on the "
                "PATH): run scripts/ensure-system-deps, or set LEA_PG_BIN"
            )
        self.bin = binaries
        self.synchronous_commit = synchronous_commit
        self.fsync = fsync
        self.port = port or free_port()
        # Not under pytest's basetemp (mode 0700, root's): the server's user must reach its directory.
        self.base = Path(tempfile.mkdtemp(prefix="lea-pg-", dir=base))
        self.base.chmod(0o755)
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.password = secrets.token_urlsafe(24)
        self.password_file = self.base / "passfile"
        self._counter = itertools.count(1)
        self.running = False

    # -- running as someone else -------------------------------------------------------------
    def _as_server_user(self) -> list[str]:
        return ["runuser", "-u", RUN_AS, "--"] if os.geteuid() == 0 else []

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _run(self, *argv: str) -> None:
        result = subprocess.run(
            [*self._as_server_user(), *argv], capture_output=True, text=True, cwd=self.base, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr.strip()}\n{log}"
            )

    # -- life cycle -------------------------------------------------------------------------
    def _initdb(self) -> None:
        self._chown(self.base)
        pwfile = self.base / "initdb-password"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            "--data-checksums",
        )
        pwfile.unlink()

    def start(self) -> LocalPostgres:
        """initdb (the first time) and pg_ctl start; after ``stop()`` it starts the same cluster again,
        on the same port (for tests that take PostgreSQL away for a while)."""
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base} "
            f"-c synchronous_commit={self.synchronous_commit} -c fsync={'on' if self.fsync else 'off'} "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.running = True
        # libpq's passfile: host:port:database:user:password, 0600, owned by whoever connects (us).
        self.password_file.write_text(f"127.0.0.1:{self.port}:*:{SUPERUSER}:{self.password}\n")
        self.password_file.chmod(0o600)
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            with contextlib.suppress(RuntimeError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.running = False

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    # -- databases --------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        """The URL LEA takes (no password: that comes from ``password_file`` or PGPASSWORD)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"{self.url(database)}?passfile={self.password_file}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its name."""
        import psycopg

        name = name or f"lea_test_{os.getpid()}_{next(self._counter)}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
