"""The agent protocol's messages as the backend reads them: CAN capability and report metrics (#12)."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from resources.agent import AGENT_MESSAGE, AgentHello, AgentReport, CanSupport
from resources.configuration import ParameterError, ParameterPresent

PEER = uuid.UUID("00000000-0000-4000-8000-000000000007")


def hello(can: object) -> str:
    """A hello as an agent sends it, with ``can`` as given."""
    return json.dumps({
        "type": "hello", "protocol": 1, "peer_id": str(PEER), "agent_version": "0.1.0",
        "underlay_address": "10.0.0.7",
        "capabilities": {"tunnels": ["gretap", "vxlan"], "can": can, "underlay_mtu": 1500}, "applied": [],
    })


def test_a_release_1_hello_with_an_empty_can_list_reads_as_no_can() -> None:
    message = AGENT_MESSAGE.validate_json(hello([]))
    assert isinstance(message, AgentHello)
    assert message.capabilities.can is CanSupport.NONE
    assert [t.value for t in message.capabilities.tunnels] == ["gretap", "vxlan"]  # the rest as before


def test_a_release_1_list_naming_vcan_reads_as_kernel_can() -> None:
    message = AGENT_MESSAGE.validate_json(hello(["vcan", "can-gw"]))
    assert isinstance(message, AgentHello) and message.capabilities.can is CanSupport.KERNEL


@pytest.mark.parametrize("can", ["kernel", "userspace", "none"])
def test_the_current_hello_names_the_way_the_agent_carries_can(can: str) -> None:
    message = AGENT_MESSAGE.validate_json(hello(can))
    assert isinstance(message, AgentHello) and message.capabilities.can.value == can


def test_an_unknown_can_capability_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        AGENT_MESSAGE.validate_json(hello("sometimes"))
    assert any(error["loc"][-2:] == ("capabilities", "can") for error in refused.value.errors())


def test_a_hello_without_can_reads_as_no_can() -> None:
    document = json.loads(hello("kernel"))
    del document["capabilities"]["can"]
    message = AGENT_MESSAGE.validate_json(json.dumps(document))
    assert isinstance(message, AgentHello) and message.capabilities.can is CanSupport.NONE


def report(*states: dict[str, object]) -> str:
    return json.dumps({
        "type": "report", "generation": 3,
        "parameters": [{"id": str(uuid.UUID(int=n + 1)), "state": s} for n, s in enumerate(states)],
    })


def test_present_and_error_carry_metrics_and_a_release_1_report_has_none() -> None:
    counters = {"frames_sent": 120, "frames_received": 118, "datagrams_lost": 0}
    message = AGENT_MESSAGE.validate_json(report(
        {"status": "present", "detail": "relay to 10.0.0.2:20001", "metrics": counters},
        {"status": "error", "reason": "relay peer lost", "metrics": {"datagrams_lost": 2}},
        {"status": "present"},  # release 1: no metrics
    ))
    assert isinstance(message, AgentReport)
    present, error, old = (p.state for p in message.parameters)
    assert isinstance(present, ParameterPresent) and present.metrics == counters
    assert isinstance(error, ParameterError) and error.metrics == {"datagrams_lost": 2}
    assert isinstance(old, ParameterPresent) and old.metrics == {}


@pytest.mark.parametrize(("metrics", "why"), [
    ({f"counter_{n}": n for n in range(17)}, "too_long"),  # at most 16 counters
    ({"frames_sent": -1}, "greater_than_equal"),
    ({"x" * 41: 1}, "string_too_long"),
    ({"frames_sent": "many"}, "int_parsing"),
])
def test_metrics_out_of_bounds_are_refused(metrics: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AGENT_MESSAGE.validate_json(report({"status": "present", "metrics": metrics}))
    assert why in {error["type"] for error in refused.value.errors()}
