"""The unit Set up bench shows (lea_app.models.bench_setup.systemd_unit) is packaging/lea-peer.service
with the bench's values written in: the same directives, nothing more, nothing less."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lea_app.models import bench_setup

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
def test_the_bench_unit_is_the_packaged_unit_with_the_benchs_values() -> None:
    peer = uuid.uuid4()
    url = "https://lea.lab.example:8421"
    packaged = directives(PACKAGED.read_text())
    shown = directives(bench_setup.systemd_unit(url, peer, "bench-07", "bench-07"))
    assert [d for d in packaged if d[1] not in BENCH_SPECIFIC] == [d for d in shown if d[1] not in BENCH_SPECIFIC]
    exec_start = dict((k, v) for _, k, v in packaged)["ExecStart"]
    filled = exec_start.replace("${LEA_BACKEND}", url).replace("${LEA_PEER_ID}", str(peer))
    assert ("[Service]", "ExecStart", filled) in shown
    assert ("[Service]", "LoadCredential", "token:/etc/lea-peer/bench-07.token") in shown
    assert dict((k, v) for _, k, v in packaged)["LoadCredential"].startswith("token:")  # the same credential
