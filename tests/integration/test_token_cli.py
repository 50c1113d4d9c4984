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


def test_a_first_start_without_tokens_says_how_to_create_the_first_admin_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir) as server:
        pass
    out = server.stdout_path.read_text()
    assert "no API token yet" in out
    assert f"lea-backend --data-dir {data_dir} token create --role admin --name NAME" in out
    created(data_dir, "admin", "ada")
    with running_server(data_dir) as again:
        pass
    assert "no API token yet" not in again.stdout_path.read_text()  # said only while there is none


def test_serve_reads_its_options_from_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "lea.toml"
    config.write_text('host = "127.0.0.1"\ndemo = true\n')
    viewer = created(tmp_path / "data", "viewer", "vera")
    with (
        running_server(tmp_path / "data", extra_args=("--config", str(config))) as server,
        server.client(viewer) as http,
    ):
        peers = http.get(f"{API}/peer")
        assert peers.status_code == 200, peers.text
        assert len(peers.json()) > 0  # demo = true: the demo fleet
