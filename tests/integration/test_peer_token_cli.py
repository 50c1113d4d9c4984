"""``lea-backend token create --role peer --peer-id UUID``: the binding is required, and only there."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.helpers.server import lea_backend

PEER = str(uuid.uuid4())


def test_peer_tokens_on_the_command_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    made = lea_backend(
        None, "token", "create", "--role", "peer", "--peer-id", PEER, "--name", "bench-1", "--data-dir", data
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("lea_")
    listed = lea_backend(None, "token", "list", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    assert "PEER" in listed.stdout.splitlines()[0]
    assert any(line.split()[:2] == ["bench-1", "peer"] and PEER in line for line in listed.stdout.splitlines())


def test_the_binding_is_checked_before_anything_is_created(tmp_path: Path) -> None:
    data = tmp_path / "data"
    missing = lea_backend(None, "token", "create", "--role", "peer", "--name", "bench-1", "--data-dir", str(data))
    assert missing.returncode != 0 and "bound to one peer" in missing.stderr and "--peer-id" in missing.stderr
    extra = lea_backend(
        None, "token", "create", "--role", "viewer", "--peer-id", PEER, "--name", "vic", "--data-dir", str(data)
    )
    assert extra.returncode != 0 and "a viewer token takes no peer id" in extra.stderr
    bad = lea_backend(
        None, "token", "create", "--role", "peer", "--peer-id", "nope", "--name", "bench-2", "--data-dir", str(data)
    )
    assert bad.returncode != 0 and "is not a resource id" in bad.stderr
    assert not data.exists()
