"""``lea-backend token create / list / revoke`` as a user runs them: before and while a server serves.

The other server tests make their tokens in-process (tests/helpers/server.py: ``create_token``, the
same code the command runs), so this is where the command itself is run.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.server import API, lea_backend, running_server


def created(data_dir: Path, role: str, name: str) -> str:
    result = lea_backend(data_dir, "token", "create", "--role", role, "--name", name)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token and "\n" not in token, result.stdout
    assert f"created {role} token '{name}'" in result.stderr
    return token


def test_tokens_made_by_the_command_before_and_while_serving_authenticate_until_revoked(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    before = created(data_dir, "editor", "erin")  # a new data directory: the command creates it
    with running_server(data_dir) as server:
        during = created(data_dir, "viewer", "vera")
        for token, name, role in ((before, "erin", "editor"), (during, "vera", "viewer")):
            with server.client(token) as http:
                assert http.get(f"{API}/whoami").json() == {"name": name, "role": role}
        listing = lea_backend(data_dir, "token", "list")
        assert listing.returncode == 0, listing.stderr
        assert "erin" in listing.stdout and "vera" in listing.stdout and before not in listing.stdout
        revoked = lea_backend(data_dir, "token", "revoke", "vera")
        assert revoked.returncode == 0, revoked.stderr
        with server.client(during) as http:
            assert http.get(f"{API}/whoami").status_code == 401
