"""packaging/lea-peer.service: valid for systemd (``systemd-analyze verify``, no warnings), only
CAP_NET_ADMIN, /dev/net/tun reachable and no packet sockets, the token as a credential, restarted
on failure but not on exit status 2, and an ExecStart the lea-peer command line accepts."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from lea_peer import cli

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "lea-peer.service"
ANALYZE = shutil.which("systemd-analyze")


def verify(unit_text: str, tmp_path: Path) -> list[str]:
    """What ``systemd-analyze verify`` says about the unit (empty: nothing), with ExecStart's
    program replaced by a stub (the package's /usr/bin/lea-peer is not installed here)."""
    stub = tmp_path / "lea-peer"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    unit = tmp_path / "lea-peer.service"
    unit.write_text(unit_text.replace("/usr/bin/lea-peer", str(stub)))
    result = subprocess.run(
        [ANALYZE or "systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    said = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return [*said, f"exit status {result.returncode}"] if result.returncode else said


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    assert verify(UNIT.read_text(), tmp_path) == []


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes")
    assert any("sometimes" in line for line in verify(broken, tmp_path))


def test_only_cap_net_admin_and_the_token_as_a_credential() -> None:
    s = service()
    assert s["CapabilityBoundingSet"] == "CAP_NET_ADMIN"
    assert s["AmbientCapabilities"] == "CAP_NET_ADMIN"
    assert s["DynamicUser"] == "yes" and s["NoNewPrivileges"] == "yes"
    assert s["LoadCredential"].startswith("token:")
    assert "${CREDENTIALS_DIRECTORY}/token" in s["ExecStart"]


def test_dev_net_tun_is_reachable_and_no_packet_sockets_are_allowed() -> None:
    s = service()
    assert s.get("PrivateDevices", "no") != "yes", "a private /dev has no /dev/net/tun for the probe ports"
    assert s["DevicePolicy"] == "closed"
    assert s["DeviceAllow"] == "/dev/net/tun rw"
    assert "AF_PACKET" not in s["RestrictAddressFamilies"].split(), "RemotePeerCheck needs no packet socket"


def test_restarted_on_failure_but_not_on_final_errors() -> None:
    s = service()
    assert s["Restart"] == "on-failure"
    assert s["RestartPreventExitStatus"] == str(cli.EXIT_FINAL)


def test_exec_start_is_a_command_line_lea_peer_accepts() -> None:
    words = shlex.split(service()["ExecStart"])
    assert words[0] == "/usr/bin/lea-peer"
    values = {"${LEA_BACKEND}": "https://lea.example:8421", "${LEA_PEER_ID}": "00000000-0000-4000-8000-0000000000a1",
              "${CREDENTIALS_DIRECTORY}/token": "/run/credentials/lea-peer.service/token"}
    args = cli._parser().parse_args([values.get(w, w) for w in words[1:]])
    assert args.command == "run" and args.data_plane == "netlink"
