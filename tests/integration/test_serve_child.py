"""``lea-backend serve --child``, the embedded backend's process (issue #13), seen from outside:
its refusals are one machine-readable line for LEA, and the bundle starts it from its own executable."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.backend import Backend
from lea_app.connection.child import ChildConnection
from lea_app.connection.process import FAILED, ChildOptions, backend_command
from resources.app import BACKEND_SUBCOMMAND
from resources.errors import DataDirLocked
from tests.helpers.child import child_options

REPO = Path(__file__).resolve().parents[2]


def serve_child(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--child", "--data-dir", str(data_dir), "--port", "0", *args],
        input=stdin, capture_output=True, text=True, timeout=60, cwd=REPO,
    )


def failure(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 2, result
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(FAILED), result.stdout
    data: dict[str, str] = json.loads(lines[0][len(FAILED):])
    return data


def test_without_a_session_token_on_stdin_it_refuses(tmp_path: Path) -> None:
    data = failure(serve_child(tmp_path / "data", stdin="short\n"))
    assert data["code"] == "invalid_request" and "session token" in data["message"]
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_it_serves_only_on_loopback_and_only_with_its_token(tmp_path: Path) -> None:
    token = "x" * 43 + "\n"
    data = failure(serve_child(tmp_path / "data", "--host", "0.0.0.0", stdin=token))
    assert "loopback" in data["message"]
    data = failure(serve_child(tmp_path / "data", "--insecure-no-auth", stdin=token))
    assert "session token" in data["message"]
    plain = subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--data-dir", str(tmp_path / "data"), "--agents-listen",
         "127.0.0.1:0"], capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert plain.returncode == 2 and "--agents-listen is for serve --child" in plain.stderr


def test_a_data_directory_in_use_is_refused_with_its_code(tmp_path: Path) -> None:
    with Backend(tmp_path / "data"):
        data = failure(serve_child(tmp_path / "data", stdin="x" * 43 + "\n"))
    assert data["code"] == "data_dir_locked" and f"(pid {os.getpid()})" in data["message"]

    async def open_it() -> None:
        with Backend(tmp_path / "data"):
            await ChildConnection.open(child_options(tmp_path / "data"))

    with pytest.raises(DataDirLocked, match="already in use by another LEA process"):
        asyncio.run(open_it())


def test_the_bundle_starts_its_child_from_its_own_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen LEA runs ``<its executable> __lea-backend__ serve --child ...``: packaging/lea_entry.py
    (the bundle's entry point) must make that the backend. Here the "executable" runs that entry point."""
    executable = tmp_path / "lea"
    executable.write_text(f'#!/bin/sh\nexec {sys.executable} {REPO / "packaging" / "lea_entry.py"} "$@"\n')
    executable.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(executable))  # what process.backend_command() reads
    assert backend_command() == [str(executable), BACKEND_SUBCOMMAND]
    options = child_options(tmp_path / "data", demo=True, demo_delay_scale=0.0)
    assert options.command()[:4] == [str(executable), BACKEND_SUBCOMMAND, "serve", "--child"]
    monkeypatch.setenv("PYTHONPATH", str(REPO))

    async def deploy_one() -> None:
        connection = await ChildConnection.open(options)
        try:
            assert connection.process.info is not None and connection.process.info.pid != os.getpid()
            snapshot = await connection.fetch_snapshot()
            names = {getattr(r, "name", None): r.id for r in snapshot.resources}
            result = await connection.store_cluster_deployment(names["demo-telematics"])
            assert result.revision > snapshot.revision
        finally:
            await connection.close()

    asyncio.run(deploy_one())


def test_the_command_line_carries_no_secret(tmp_path: Path) -> None:
    options = ChildOptions(tmp_path, agents_listen=("::1", 0), extra_args=("--agent-timeout", "5"))
    command = options.command()
    assert command[: len(backend_command())] == backend_command()
    assert command[command.index("--agents-listen"):][:2] == ["--agents-listen", "[::1]:0"]
    assert command[-2:] == ["--agent-timeout", "5"]
    assert not any("token" in part.lower() for part in command)
