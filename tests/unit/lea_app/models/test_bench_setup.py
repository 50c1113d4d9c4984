"""What Set up bench shows to copy (Qt-free): the exact command, the token file, the systemd unit."""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from lea_app.models import bench_setup

PEER = uuid.UUID("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab")
URL = "https://lea.lab.example:8421"


def test_the_run_command_is_exactly_what_the_agent_takes() -> None:
    assert bench_setup.run_command(URL, PEER, "bench-07") == (
        "lea-peer run --backend https://lea.lab.example:8421 --peer-id 6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab "
        "--token-file /etc/lea-peer/bench-07.token"
    )


def test_the_command_to_copy_puts_one_option_a_line_and_reads_as_the_exact_command() -> None:
    lines = bench_setup.run_command_lines(URL, PEER, "bench-07")
    assert lines == (
        "lea-peer run \\\n  --backend https://lea.lab.example:8421 \\\n"
        "  --peer-id 6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab \\\n  --token-file /etc/lea-peer/bench-07.token"
    )
    assert bench_setup.joined(lines) == bench_setup.run_command(URL, PEER, "bench-07")


def test_the_token_file_is_written_readable_by_root_only_with_the_token_quoted() -> None:
    lines = bench_setup.joined(bench_setup.token_file_commands("bench-07", "lea_abc'def")).splitlines()
    assert lines[0] == "sudo install -d -m 0700 /etc/lea-peer"
    assert lines[1] == (
        "printf '%s\\n' 'lea_abc'\"'\"'def' | sudo install -m 0600 /dev/stdin /etc/lea-peer/bench-07.token"
    )
    # The shell hands printf the token exactly.
    assert shlex.split(lines[1])[2] == "lea_abc'def"


def test_the_systemd_unit_loads_the_token_as_a_credential_and_runs_the_agent_with_it() -> None:
    unit = bench_setup.systemd_unit(URL, PEER, "bench-07", "bench-07")
    lines = bench_setup.joined(unit).splitlines()
    assert "[Service]" in lines and "[Install]" in lines
    assert "LoadCredential=token:/etc/lea-peer/bench-07.token" in lines
    assert (
        "ExecStart=/usr/bin/lea-peer run --backend https://lea.lab.example:8421 "
        "--peer-id 6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab --token-file ${CREDENTIALS_DIRECTORY}/token"
    ) in lines
    assert "AmbientCapabilities=CAP_NET_ADMIN" in lines  # enough for netlink; no root needed


def test_token_names_follow_the_backends_rule_and_a_free_one_is_suggested() -> None:
    assert bench_setup.token_name_problem("bench-07") is None
    assert bench_setup.token_name_problem("ops@lab.b7") is None
    assert bench_setup.token_name_problem("") is not None
    for bad in (".hidden", "a/b", "a b", "x" * 65):
        assert bench_setup.token_name_problem(bad) is not None, bad
    assert bench_setup.suggested_token_name("bench-07", ()) == "bench-07"
    assert bench_setup.suggested_token_name("bench-07", ("bench-07", "bench-07-2")) == "bench-07-3"


def test_the_commands_do_what_they_say_in_a_real_shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_setup, "TOKEN_DIR", str(tmp_path / "lea-peer"))
    token = "lea_x'y z"
    store = bench_setup.token_file_commands("bench-07", token).replace("sudo ", "")
    subprocess.run(["bash", "-euo", "pipefail", "-c", store], check=True)
    written = tmp_path / "lea-peer" / "bench-07.token"
    assert written.read_text() == token + "\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    # The command on several lines reaches lea-peer as these arguments, exactly.
    echo = "lea-peer() { printf '%s\\n' \"$@\"; }\n" + bench_setup.run_command_lines(URL, PEER, "bench-07")
    out = subprocess.run(["bash", "-c", echo], check=True, capture_output=True, text=True).stdout
    assert out.splitlines() == bench_setup.run_arguments(URL, PEER, str(written))[1:]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # verify needs the ExecStart binary: a stand-in at lea-peer's place (it checks the path, not the program).
    unit = bench_setup.systemd_unit(URL, PEER, "bench-07", "bench-07").replace("/usr/bin/lea-peer", "/usr/bin/true")
    path = tmp_path / "lea-peer.service"
    path.write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0 and "lea-peer.service" not in result.stderr, result.stderr
