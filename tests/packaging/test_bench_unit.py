"""The unit Set up bench shows (lea_app.models.bench_setup.systemd_unit) is packaging/lea-peer.service
with the bench's values written in: the same directives, nothing more, nothing less."""

from __future__ import annotations

import argparse
import shlex
import uuid
from pathlib import Path

import pytest

from lea_app.models import bench_setup
from lea_peer import cli
from resources.cli_config import subcommand_parser, with_config

PACKAGED = Path(__file__).parents[2] / "packaging" / "lea-peer.service"
#: What the bench's values replace: the settings file and the token path of the packaged unit.
BENCH_SPECIFIC = {"Description", "Documentation", "EnvironmentFile", "LoadCredential", "ExecStart"}


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every directive, continuation lines joined, comments dropped."""
    section, found = "", []
    for line in bench_setup.joined(text).splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        found.append((section, key, value))
    return found


@pytest.mark.skipif(not PACKAGED.exists(), reason="packaging/lea-peer.service is not in this tree yet")
def command_line(exec_start: str, config: Path) -> argparse.Namespace:
    """What lea-peer makes of an ExecStart (the package's config file read from ``config``)."""
    words = [config.as_posix() if w == "/etc/lea/peer.toml" else w for w in shlex.split(exec_start)]
    assert words[0] == "/usr/bin/lea-peer"
    parser = cli._parser()
    return parser.parse_args(with_config(words[1:], "run", subcommand_parser(parser, "run")))


def test_the_bench_unit_is_the_packaged_unit_with_the_benchs_values(tmp_path: Path) -> None:
    peer = uuid.uuid4()
    url = "https://lea.lab.example:8421"
    packaged = directives(PACKAGED.read_text())
    shown = directives(bench_setup.systemd_unit(url, peer, "bench-07", "bench-07"))
    assert [d for d in packaged if d[1] not in BENCH_SPECIFIC] == [d for d in shown if d[1] not in BENCH_SPECIFIC]
    # The same lea-peer command line: the packaged unit reads the bench's values from /etc/lea/peer.toml.
    config = tmp_path / "peer.toml"
    config.write_text(f'backend = "{url}"\npeer-id = "{peer}"\n')
    assert command_line(dict((k, v) for _, k, v in packaged)["ExecStart"], config) == command_line(
        dict((k, v) for _, k, v in shown)["ExecStart"], config
    )
    assert ("[Service]", "LoadCredential", "token:/etc/lea-peer/bench-07.token") in shown
    assert dict((k, v) for _, k, v in packaged)["LoadCredential"].startswith("token:")  # the same credential
