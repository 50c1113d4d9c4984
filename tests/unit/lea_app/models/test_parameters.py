"""A peer's configuration as the engineer reads it (Qt-free): values in one line, reports joined in."""

from __future__ import annotations

import uuid

from lea_app.models.parameters import describe_value, parameter_rows, summarise
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)

PEER = uuid.uuid4()


def param(kind: ParameterKind, value: dict[str, str | int | bool], *deps: Parameter,
          target: Target = Target.PRESENT) -> Parameter:
    return Parameter(id=uuid.uuid4(), kind=kind, target=target, dependencies=tuple(d.id for d in deps), value=value)


def test_every_kind_reads_as_one_line() -> None:
    bridge = param(ParameterKind.ETHERNET_BRIDGE, {"name": "br-lea"})
    cases = {
        "eth0": param(ParameterKind.DEVICE_INTERFACE, {"interface": "eth0"}),
        "br-lea": bridge,
        "eth0 into br-lea": param(ParameterKind.INTERFACE_JOIN, {"interface": "eth0", "bridge": "br-lea"}),
        "vcan-lea": param(ParameterKind.CAN_BRIDGE, {"name": "vcan-lea"}),
        "server 10.0.0.2:20001": param(
            ParameterKind.CAN_CONNECTION, {"role": "server", "remote": "10.0.0.2", "port": 20001}
        ),
        "can0 -> vcan-lea": param(ParameterKind.CAN_LOCAL_ROUTE, {"source": "can0", "destination": "vcan-lea"}),
        "probe 10.0.0.2": param(ParameterKind.REMOTE_PEER_CHECK, {"remote": "10.0.0.2"}),
        "gre-1a2b: 10.0.0.1 -> 10.0.0.2": param(
            ParameterKind.GRE_INTERFACE, {"name": "gre-1a2b", "local": "10.0.0.1", "remote": "10.0.0.2"}
        ),
    }
    for text, parameter in cases.items():
        assert describe_value(parameter) == text, parameter.kind


def test_a_vxlan_tunnel_shows_encapsulation_vni_addresses_and_mtu_and_never_hides_an_unknown_key() -> None:
    tunnel = param(ParameterKind.GRE_INTERFACE, {
        "name": "gre-1a2b", "local": "10.0.0.1", "remote": "10.0.0.2",
        "encapsulation": "vxlan", "vni": 4711, "port": 4789, "mtu": 1450, "ttl": 64,
    })
    assert describe_value(tunnel) == "vxlan vni 4711 port 4789 gre-1a2b: 10.0.0.1 -> 10.0.0.2, mtu 1450 (ttl=64)"
    gretap = param(ParameterKind.GRE_INTERFACE, {
        "name": "gre-1a2b", "local": "10.0.0.1", "remote": "10.0.0.2", "encapsulation": "gretap", "vni": 0,
        "port": 0, "mtu": 1462,
    })
    assert describe_value(gretap) == "gretap gre-1a2b: 10.0.0.1 -> 10.0.0.2, mtu 1462"  # no vni 0, port 0
    # A tunnel without its addresses yet says so instead of printing nothing.
    assert describe_value(param(ParameterKind.GRE_INTERFACE, {"name": "gre-x"})) == "gre-x: ? -> ?"
    assert describe_value(param(ParameterKind.GRE_INTERFACE, {})) == "? -> ?"


def test_a_remote_peer_check_names_the_peer_it_probes() -> None:
    bench = uuid.uuid4()
    check = param(ParameterKind.REMOTE_PEER_CHECK, {"remote": "10.0.0.8", "peer": str(bench), "bridge": "br-lea"})
    names = {bench: "bench-08"}
    assert describe_value(check, names.get) == "probe bench-08 at 10.0.0.8 (its bridge br-lea)"
    assert describe_value(check) == f"probe {str(bench)[:8]} at 10.0.0.8 (its bridge br-lea)"
    rows = parameter_rows(PeerConfiguration(id=PEER, parameters=(check,)), None, names.get)
    assert rows[check.id].value.startswith("probe bench-08 at")


def test_rows_come_in_dependency_order_with_the_report_of_each_parameter() -> None:
    bridge = param(ParameterKind.ETHERNET_BRIDGE, {"name": "br-lea"})
    device = param(ParameterKind.DEVICE_INTERFACE, {"interface": "eth0"})
    join = param(ParameterKind.INTERFACE_JOIN, {"interface": "eth0", "bridge": "br-lea"}, device, bridge)
    tunnel = param(ParameterKind.GRE_INTERFACE, {"name": "gre-1", "local": "a", "remote": "b"}, bridge)
    # Listed with the join first: the rows still put each parameter after what it depends on.
    configuration = PeerConfiguration(id=PEER, parameters=(join, tunnel, bridge, device))
    state = PeerConfigurationState(id=PEER, parameters=(
        ParameterReport(id=bridge.id, state=ParameterPresent(detail="created, mtu 1450")),
        ParameterReport(id=device.id, state=ParameterPresent()),
        ParameterReport(id=tunnel.id, state=ParameterError(reason="no common tunnel type")),
    ))
    rows = parameter_rows(configuration, state)
    ordered = sorted(rows.values(), key=lambda r: r.order)
    assert [r.parameter.id for r in ordered] == [device.id, bridge.id, join.id, tunnel.id]
    assert [r.order for r in ordered] == [1, 2, 3, 4]
    assert [(r.kind, r.state_text, r.detail) for r in ordered] == [
        ("Device interface", "Present", ""),
        ("Ethernet bridge", "Present", "created, mtu 1450"),
        ("Interface join", "Not reported", ""),
        ("Tunnel", "Error", "no common tunnel type"),
    ]
    assert [r.reached for r in ordered] == [True, True, False, False]
    assert rows[tunnel.id].failed and not rows[join.id].failed
    summary = summarise(rows)
    assert (summary.total, summary.reached, summary.errors, summary.unreported) == (4, 2, 1, 1)
    assert summary.text() == "2 of 4 parameters as wanted, 1 error, 1 not reported yet"


def test_an_undeploy_wants_absent_so_a_present_report_is_not_reached_yet() -> None:
    bridge = param(ParameterKind.ETHERNET_BRIDGE, {"name": "br-lea"}, target=Target.ABSENT)
    device = param(ParameterKind.DEVICE_INTERFACE, {"interface": "eth0"}, target=Target.ABSENT)
    configuration = PeerConfiguration(id=PEER, parameters=(bridge, device))
    state = PeerConfigurationState(id=PEER, parameters=(
        ParameterReport(id=bridge.id, state=ParameterPresent()),
        ParameterReport(id=device.id, state=ParameterAbsent()),
    ))
    rows = parameter_rows(configuration, state)
    assert (rows[bridge.id].target, rows[bridge.id].state_text, rows[bridge.id].reached) == ("Absent", "Present", False)
    assert (rows[device.id].state_text, rows[device.id].reached) == ("Absent", True)
    assert summarise(rows).text() == "1 of 2 parameters as wanted"


def test_no_configuration_means_no_rows() -> None:
    assert parameter_rows(None, None) == {}
    assert summarise({}).text() == "No configuration: this peer is in no deployed cluster."
    # Reports without a configuration (a late report after the configuration went) show nothing.
    assert parameter_rows(PeerConfiguration(id=PEER), PeerConfigurationState(id=PEER)) == {}
