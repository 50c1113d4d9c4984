"""CAN parameters, capabilities and metrics as the engineer reads them (Qt-free)."""

from __future__ import annotations

import uuid

import pytest

from lea_app.models.can_text import bitrate_text, can_capability, metrics_text, metrics_tooltip, sample_point_text
from lea_app.models.parameters import describe_value, parameter_rows
from resources.agent import CanSupport, Capabilities
from resources.configuration import (
    Parameter,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.state import AgentInfo

K = ParameterKind


def param(kind: ParameterKind, value: dict[str, str | int | bool]) -> Parameter:
    return Parameter(id=uuid.uuid4(), kind=kind, target=Target.PRESENT, value=value)


@pytest.mark.parametrize(("value", "text"), [
    ({"interface": "eth0"}, "eth0"),
    ({"interface": "vcan0", "can": "vcan"}, "vcan0: virtual CAN"),
    (
        {"interface": "can0", "can": "can", "bitrate": 500_000, "sample_point": 875, "fd": False},
        "can0: CAN 500 kbit/s, sample point 87.5 %",
    ),
    (
        {"interface": "can1", "can": "can", "bitrate": 500_000, "sample_point": 800, "fd": True,
         "data_bitrate": 2_000_000, "data_sample_point": 750},
        "can1: CAN FD 500 kbit/s / 2 Mbit/s, sample points 80.0 % / 75.0 %",
    ),
    ({"interface": "can3", "can": "can", "bitrate": 1_000_000, "fd": True, "data_bitrate": 5_000_000},
     "can3: CAN FD 1 Mbit/s / 5 Mbit/s, sample points ? / ?"),  # a missing figure is a "?"
    # What this LEA does not know is shown as it is, never dropped.
    ({"interface": "can2", "can": "can", "bitrate": "fast", "sample_point": 875}, "can2: CAN sample point 87.5 % "
     "(bitrate=fast)"),
    ({"interface": "x0", "can": "lin"}, "x0 (can=lin)"),
])
def test_a_device_interface_shows_the_can_bit_timing(value: dict[str, str | int | bool], text: str) -> None:
    assert describe_value(param(K.DEVICE_INTERFACE, value)) == text


def test_a_can_connection_shows_role_both_ends_and_the_port() -> None:
    connection = param(K.CAN_CONNECTION, {"role": "server", "local": "192.0.2.1", "remote": "192.0.2.2", "port": 20001})
    assert describe_value(connection) == "server 192.0.2.1:20001 <-> 192.0.2.2:20001"
    client = param(K.CAN_CONNECTION, {"role": "client", "local": "192.0.2.2", "remote": "", "port": 20001})
    assert describe_value(client) == "client 192.0.2.2:20001 <-> ?:20001"  # no address yet: said so


def test_a_can_local_route_shows_its_direction_and_whether_fd_frames_go_too() -> None:
    to_bridge = param(K.CAN_LOCAL_ROUTE, {"source": "can1", "destination": "vcan-lea", "fd": True})
    from_bridge = param(K.CAN_LOCAL_ROUTE, {"source": "vcan-lea", "destination": "can0", "fd": False})
    assert describe_value(to_bridge) == "can1 -> vcan-lea (+FD)"
    assert describe_value(from_bridge) == "vcan-lea -> can0"
    assert describe_value(param(K.CAN_BRIDGE, {"name": "vcan-lea"})) == "vcan-lea"


@pytest.mark.parametrize(("bitrate", "text"), [
    (500_000, "500 kbit/s"), (2_000_000, "2 Mbit/s"), (83_333, "83.333 kbit/s"), (1_250_000, "1.25 Mbit/s"),
    (5_000_001, "5.000001 Mbit/s"), (999, "999 bit/s"), (2**32 - 1, "4294.967295 Mbit/s"),
])
def test_bitrates_are_exact(bitrate: int, text: str) -> None:
    assert bitrate_text(bitrate) == text


def test_sample_points_in_tenths_of_a_percent() -> None:
    assert [sample_point_text(t) for t in (875, 800, 1, 1000)] == ["87.5 %", "80.0 %", "0.1 %", "100.0 %"]


def test_metrics_read_as_one_short_line_and_in_full_in_the_tooltip() -> None:
    relay = {
        "datagrams_out_of_order": 1, "frames_received": 118, "datagrams_lost": 0, "frames_sent": 120,
        "datagrams_malformed": 2,
    }
    assert metrics_text(relay) == "frames sent 120, received 118, lost 0, malformed 2, out of order 1"
    assert metrics_tooltip(relay).splitlines() == [
        "CAN frames sent to the remote relay: 120 (frames_sent)",
        "CAN frames received from the remote relay: 118 (frames_received)",
        "datagrams lost (gaps in the sequence numbers): 0 (datagrams_lost)",
        "datagrams rejected as malformed: 2 (datagrams_malformed)",
        "datagrams that arrived out of order: 1 (datagrams_out_of_order)",
    ]
    # Counters this LEA does not know come after, sorted, never hidden.
    assert metrics_text({"retries": 3, "frames_sent": 5, "hub_frames_dropped": 4}) == (
        "frames sent 5, hub frames dropped 4, retries 3"
    )
    assert metrics_text({}) == "" == metrics_tooltip({})


def test_rows_carry_metrics_and_a_simulation_is_labelled_in_the_state() -> None:
    peer = uuid.uuid4()
    relay = param(K.CAN_CONNECTION, {"role": "client", "local": "10.0.0.2", "remote": "10.0.0.1", "port": 20001})
    route = param(K.CAN_LOCAL_ROUTE, {"source": "can0", "destination": "vcan-lea", "fd": False})
    lost = param(K.CAN_LOCAL_ROUTE, {"source": "vcan-lea", "destination": "can0", "fd": False})
    state = PeerConfigurationState(id=peer, parameters=(
        ParameterReport(id=relay.id, state=ParameterPresent(detail="relay up", metrics={
            "frames_sent": 120, "frames_received": 118, "datagrams_lost": 0})),
        ParameterReport(id=route.id, state=ParameterPresent(detail="can0: simulated ECU endpoint udp:10.0.0.2:30000")),
        ParameterReport(id=lost.id, state=ParameterError(reason="relay peer lost", metrics={"datagrams_lost": 3})),
    ))
    rows = parameter_rows(PeerConfiguration(id=peer, parameters=(relay, route, lost)), state)
    assert rows[relay.id].metrics == "frames sent 120, received 118, lost 0"
    assert "datagrams lost (gaps in the sequence numbers): 0" in rows[relay.id].metrics_tooltip
    assert (rows[relay.id].state_text, rows[relay.id].simulated) == ("Present", False)
    assert (rows[route.id].state_text, rows[route.id].simulated, rows[route.id].metrics) == (
        "Present (simulated)", True, "",
    )
    assert (rows[lost.id].state_text, rows[lost.id].metrics) == ("Error", "lost 3")
    assert rows[route.id].metrics_tooltip == ""
    assert rows[route.id].reached and rows[lost.id].failed


def test_the_can_capability_of_a_bench() -> None:
    def agent(can: CanSupport) -> AgentInfo:
        return AgentInfo(version="0.2.0", capabilities=Capabilities(can=can))

    assert [can_capability(False, True, agent(c)) for c in CanSupport] == ["kernel", "userspace", "none"]
    assert can_capability(True, True, None) == "simulated"  # a demo bench
    assert can_capability(False, False, None) == ""  # offline: not known
    assert can_capability(False, True, None) == "unknown"
