"""packaging/lea-server.service: valid for systemd (``systemd-analyze verify``, no warnings), hardened
(``systemd-analyze security`` rates it OK, docs/server.md records the figure), running as the system
user lea on its StateDirectory /var/lib/lea with the options of /etc/lea/lea.toml, and an ExecStart
the lea-backend command line accepts with the packaged config file."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from backend import cli
from resources.cli_config import subcommand_parser, with_config
from tests.packaging import systemd

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "lea-server.service"
CONFIG = ROOT / "packaging" / "linux" / "lea.toml"
PROGRAM = "/usr/bin/lea-backend"
needs_analyze = pytest.mark.skipif(systemd.ANALYZE is None, reason="systemd-analyze is not installed")


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    assert systemd.verify(UNIT.read_text(), PROGRAM, tmp_path) == []


@needs_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=very")
    assert any("very" in line for line in systemd.verify(broken, PROGRAM, tmp_path))


@needs_analyze
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    assert systemd.exposure(UNIT.read_text(), PROGRAM, tmp_path) <= 2.0  # 1.3 when written (docs/server.md)


@needs_analyze
def test_the_rating_would_see_a_weaker_unit(tmp_path: Path) -> None:
    weaker = "\n".join(line for line in UNIT.read_text().splitlines() if not line.startswith(("Protect", "Private")))
    assert systemd.exposure(weaker, PROGRAM, tmp_path) > systemd.exposure(UNIT.read_text(), PROGRAM, tmp_path)


def test_hardening_user_and_state_directory() -> None:
    s = service()
    for key, value in {
        "User": "lea", "Group": "lea", "StateDirectory": "lea", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
        "PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "", "RestartPreventExitStatus": "2",
    }.items():
        assert s[key] == value, key
    assert "StandardOutput" not in s  # the journal (systemd's default): journalctl -u lea-server


def test_exec_start_with_the_packaged_config_is_a_command_line_lea_backend_accepts() -> None:
    words = shlex.split(service()["ExecStart"])
    assert words[0] == PROGRAM
    words = [str(CONFIG) if w == "/etc/lea/lea.toml" else w for w in words[1:]]
    parser = cli.build_parser()
    args = parser.parse_args(with_config(words, "serve", subcommand_parser(parser, "serve")))
    assert args.run is cli.cmd_serve
    assert str(args.data_dir) == "/var/lib/lea"
    assert (args.host, args.port) == ("127.0.0.1", 8421)  # loopback until the admin says otherwise
