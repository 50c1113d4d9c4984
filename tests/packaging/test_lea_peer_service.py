"""packaging/lea-peer.service: valid for systemd (``systemd-analyze verify``, no warnings), only
CAP_NET_ADMIN, /dev/net/tun reachable and no packet sockets, the token as a credential, restarted
on failure but not on exit status 2, and an ExecStart the lea-peer command line accepts."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from lea_peer import cli
from resources.cli_config import subcommand_parser, with_config
from tests.packaging import systemd

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "lea-peer.service"
ANALYZE = systemd.ANALYZE


def verify(unit_text: str, tmp_path: Path) -> list[str]:
    return systemd.verify(unit_text, "/usr/bin/lea-peer", tmp_path)


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


def test_exec_start_is_a_command_line_lea_peer_accepts(tmp_path: Path) -> None:
    words = shlex.split(service()["ExecStart"])
    assert words[0] == "/usr/bin/lea-peer"
    assert words[1:4] == ["run", "--config", "/etc/lea/peer.toml"]
    config = tmp_path / "peer.toml"  # what the package's /etc/lea/peer.toml says once the admin filled it in
    config.write_text('backend = "https://lea.example:8421"\npeer-id = "00000000-0000-4000-8000-0000000000a1"\n')
    values = {"/etc/lea/peer.toml": str(config),
              "${CREDENTIALS_DIRECTORY}/token": "/run/credentials/lea-peer.service/token"}
    parser = cli._parser()
    argv = with_config([values.get(w, w) for w in words[1:]], "run", subcommand_parser(parser, "run"))
    args = parser.parse_args(argv)
    assert args.command == "run" and args.data_plane == "netlink"
    assert args.backend == "https://lea.example:8421" and str(args.token_file).startswith("/run/credentials/")


def test_its_own_user_and_the_token_file_of_the_package() -> None:
    s = service()
    assert s["User"] == "lea-peer"
    assert s["LoadCredential"] == "token:/etc/lea/peer.token"


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    # docs/server.md records the figure; above 5.0 systemd calls a unit MEDIUM exposed.
    assert systemd.exposure(UNIT.read_text(), "/usr/bin/lea-peer", tmp_path) <= 5.0
