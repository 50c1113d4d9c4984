"""lea-peer's command line: bad input is one line naming the problem (exit 2), URLs and defaults."""

from __future__ import annotations

import asyncio
import importlib
import json
from pathlib import Path

import pytest

from lea_peer import cli
from resources.agent import CONNECT_PATH, Capabilities

PEER = "00000000-0000-4000-8000-0000000000a1"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("secret-token\n")
    return path


def run_args(token_file: Path, **overrides: str) -> list[str]:
    args = {"--backend": "ws://127.0.0.1:9", "--peer-id": PEER, "--token-file": str(token_file),
            "--underlay-address": "10.0.0.1", "--data-plane": "memory"}
    args.update(overrides)
    return ["run", *[x for pair in args.items() for x in pair]]


def error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert cli.main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lea-peer:")]
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_token_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = error_line(capsys, run_args(tmp_path / "nope"))
    assert line == f"lea-peer: --token-file {tmp_path / 'nope'}: no such file"


def test_empty_token_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    assert "the file is empty" in error_line(capsys, run_args(empty))


def test_unreadable_token_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "cannot read it" in error_line(capsys, run_args(tmp_path))  # a directory


def test_bad_peer_id(capsys: pytest.CaptureFixture[str], token_file: Path) -> None:
    line = error_line(capsys, run_args(token_file, **{"--peer-id": "bench-1"}))
    assert line.startswith("lea-peer: --peer-id 'bench-1': not a UUID")


@pytest.mark.parametrize("url", ["ftp://host/", "host:8421", "https://", "https://host:84x1", "https://h:70000"])
def test_bad_backend_url(capsys: pytest.CaptureFixture[str], token_file: Path, url: str) -> None:
    line = error_line(capsys, run_args(token_file, **{"--backend": url}))
    assert line.startswith(f"lea-peer: --backend {url!r}:")


def test_bad_underlay_address(capsys: pytest.CaptureFixture[str], token_file: Path) -> None:
    assert "not an IP address" in error_line(capsys, run_args(token_file, **{"--underlay-address": "bench"}))


def test_ca_file_needs_tls(capsys: pytest.CaptureFixture[str], token_file: Path) -> None:
    assert "--ca-file needs an https://" in error_line(capsys, run_args(token_file, **{"--ca-file": str(token_file)}))


def test_ca_file_must_be_a_certificate(capsys: pytest.CaptureFixture[str], token_file: Path) -> None:
    line = error_line(capsys, run_args(token_file, **{"--backend": "https://h:1", "--ca-file": str(token_file)}))
    assert "not a readable PEM certificate file" in line


def test_recheck_must_be_positive(capsys: pytest.CaptureFixture[str], token_file: Path) -> None:
    assert "--recheck-s 0.0: must be more than 0" in error_line(capsys, run_args(token_file, **{"--recheck-s": "0"}))


def test_missing_netlink_data_plane_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(cli.UsageError, match="the netlink data plane is not available"):
        cli.make_data_plane("netlink", None)


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("https://lea.example:8421", f"wss://lea.example:8421{CONNECT_PATH}"),
        ("http://127.0.0.1:8421/", f"ws://127.0.0.1:8421{CONNECT_PATH}"),
        ("HTTPS://lea.example", f"wss://lea.example{CONNECT_PATH}"),
        (f"wss://lea.example:1{CONNECT_PATH}", f"wss://lea.example:1{CONNECT_PATH}"),
        ("https://lea.example/base", f"wss://lea.example/base{CONNECT_PATH}"),
    ],
)
def test_agent_endpoint(given: str, endpoint: str) -> None:
    assert cli.agent_endpoint(given) == endpoint


def test_default_underlay_is_the_source_address_towards_the_backend() -> None:
    assert cli.default_underlay_address(f"ws://127.0.0.1:8421{CONNECT_PATH}") == "127.0.0.1"


def test_help_states_the_default_underlay(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    assert "source address" in " ".join(capsys.readouterr().out.split())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == "lea-peer 0.1.0"


def test_probe_and_cleanup_with_the_simulation(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", "--data-plane", "memory"]) == 0
    assert set(json.loads(capsys.readouterr().out)["tunnels"]) == {"gretap", "vxlan"}
    assert cli.main(["cleanup", "--data-plane", "memory"]) == 0
    assert capsys.readouterr().out.strip() == "removed 0 link(s)"


def test_netlink_data_plane_is_built_lazily_with_peer_netns_and_underlay(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, object] = {}

    class FakeNetlink:
        def __init__(self, **kwargs: object) -> None:
            made.update(kwargs)

    class Module:
        NetlinkDataPlane = FakeNetlink

    monkeypatch.setattr(importlib, "import_module", lambda name: {"lea_peer.dataplane.netlink": Module}[name])
    peer = cli.parse_peer_id(PEER)
    plane = cli.make_data_plane("netlink", "bench-ns", peer, "10.0.0.1")
    assert isinstance(plane, FakeNetlink)
    assert made == {"peer_id": peer, "netns": "bench-ns", "underlay_address": "10.0.0.1"}


def test_a_data_plane_that_cannot_start_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], token_file: Path
) -> None:
    from lea_peer.dataplane.memory import MemoryDataPlane

    class Missing(MemoryDataPlane):
        async def probe(self) -> Capabilities:
            raise RuntimeError("network namespace bench-ns does not exist")

        async def sweep(self, keep: object) -> list[str]:
            raise RuntimeError("network namespace bench-ns does not exist")

    monkeypatch.setattr(cli, "make_data_plane", lambda *args: Missing())
    for argv in (run_args(token_file), ["probe"], ["cleanup"]):
        assert cli.main(argv) == 1
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lea-peer:")]
        assert len(lines) == 1 and lines[0].endswith("network namespace bench-ns does not exist"), lines


@pytest.mark.parametrize(
    ("sims", "problem"),
    [
        (["can0=udp:ecu:1"], "lea-peer: --can-sim 'can0=udp:ecu:1': 'ecu' is not an IP address"),
        (["can0"], "lea-peer: --can-sim 'can0': expected DEVICE=udp:HOST:PORT, e.g. can0=udp:127.0.0.1:30000"),
        (["can0=udp:127.0.0.1:1", "can0=udp:127.0.0.1:2"], "lea-peer: --can-sim: device can0 is given twice"),
        (["can0=udp:127.0.0.1:1", "can1=udp:127.0.0.1:1"],
         "lea-peer: --can-sim: udp:127.0.0.1:1 is given for both can0 and can1"),
    ],
)
def test_a_bad_can_sim_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], token_file: Path, sims: list[str], problem: str
) -> None:
    argv = run_args(token_file)
    for sim in sims:
        argv += ["--can-sim", sim]
    assert error_line(capsys, argv) == problem


def test_can_sim_with_can_none_is_refused(capsys: pytest.CaptureFixture[str], token_file: Path) -> None:
    argv = [*run_args(token_file), "--can", "none", "--can-sim", "can0=udp:127.0.0.1:30000"]
    assert "--can-sim needs CAN: drop --can none" in error_line(capsys, argv)


def test_a_simulated_ecu_endpoint_that_cannot_be_bound_stops_the_agent_with_exit_1(
    capsys: pytest.CaptureFixture[str], token_file: Path
) -> None:
    assert cli.main([*run_args(token_file), "--can-sim", "can0=udp:192.0.2.9:30000"]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lea-peer:")]
    assert len(lines) == 1 and "simulated ECU endpoint udp:192.0.2.9:30000: cannot bind it" in lines[0], lines


def test_the_can_plane_follows_can_and_can_sim() -> None:
    from lea_peer.can.disabled import DisabledCanPlane
    from lea_peer.can.ecu_sim import EcuAddress
    from lea_peer.can.userspace import UserspaceCanPlane

    sim = [EcuAddress("can0", "127.0.0.1", 30000)]
    choose = cli.choose_can_plane
    assert asyncio.run(choose("memory", "auto", None, [])) is None  # the memory plane's own simulation
    memory_sim = asyncio.run(choose("memory", "auto", None, sim))
    assert isinstance(memory_sim, UserspaceCanPlane) and list(memory_sim.ecus) == ["can0"]
    assert isinstance(asyncio.run(choose("netlink", "none", "ns", [])), DisabledCanPlane)
    netlink_sim = asyncio.run(choose("netlink", "auto", "ns", sim))
    assert isinstance(netlink_sim, UserspaceCanPlane) and netlink_sim.netns == "ns"
    assert isinstance(asyncio.run(choose("netlink", "userspace", "ns", [])), UserspaceCanPlane)


def test_probe_announces_the_can_support(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["probe", "--data-plane", "memory"]) == 0
    assert json.loads(capsys.readouterr().out)["can"] == "userspace"


def test_a_list_of_backends_is_tried_in_turn(
    token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import logging
    import random
    import socket
    import uuid as uuid_module

    from lea_peer.connection import Agent
    from lea_peer.dataplane.memory import MemoryDataPlane
    from lea_peer.reconnect import ReconnectSchedule

    closed = []
    for _ in range(2):  # two loopback ports nobody listens on
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed.append(sock.getsockname()[1])
    args = cli._parser().parse_args([
        "run", "--backend", f"http://127.0.0.1:{closed[0]}, http://127.0.0.1:{closed[1]}",
        "--peer-id", str(uuid_module.uuid4()), "--token-file", str(token_file), "--underlay-address", "127.0.0.1",
    ])
    settings = cli._settings(args)
    assert settings.url == f"ws://127.0.0.1:{closed[0]}/api/v1/peer/connect"
    assert settings.fallback_urls == (f"ws://127.0.0.1:{closed[1]}/api/v1/peer/connect",)

    async def go() -> None:
        agent = Agent(settings, MemoryDataPlane(), ReconnectSchedule(random.Random(1), first=0.01, maximum=0.02))
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(task, 10)

    with caplog.at_level(logging.INFO, logger="lea_peer.connection"):
        asyncio.run(go())
    tried = [r.getMessage() for r in caplog.records if r.getMessage().startswith("connecting to")]
    assert len(tried) >= 4
    assert tried[0].endswith(f":{closed[0]}/api/v1/peer/connect")
    assert tried[1].endswith(f":{closed[1]}/api/v1/peer/connect")
    assert tried[2].endswith(f":{closed[0]}/api/v1/peer/connect")
