"""cangw requests byte by byte against <linux/can/gw.h> and <linux/netlink.h>: nlmsghdr (len u32,
type u16, flags u16, seq u32, pid u32), struct rtcanmsg (u8 can_family = AF_CAN 29, u8 gwtype =
CGW_TYPE_CAN_CAN 1, u16 flags), then attributes (len u16, type u16, value, padded to 4); and
listings as the kernel's cgw_put_job writes them."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from lea_peer.can.cangw import (
    CGW_DELETED,
    CGW_DST_IF,
    CGW_FILTER,
    CGW_HANDLED,
    CGW_LIM_HOPS,
    CGW_SRC_IF,
    GatewayRule,
    ListedRule,
    Reply,
    decode_replies,
    encode_request,
    hops_problem,
    max_hops,
)

H = "="  # netlink is host byte order


def test_the_enum_values_are_the_headers() -> None:
    # enum { CGW_UNSPEC, CGW_MOD_AND, CGW_MOD_OR, CGW_MOD_XOR, CGW_MOD_SET, CGW_CS_XOR, CGW_CS_CRC8,
    #        CGW_HANDLED, CGW_DROPPED, CGW_SRC_IF, CGW_DST_IF, CGW_FILTER, CGW_DELETED, CGW_LIM_HOPS, ... }
    assert (CGW_HANDLED, CGW_SRC_IF, CGW_DST_IF, CGW_FILTER, CGW_DELETED, CGW_LIM_HOPS) == (7, 9, 10, 11, 12, 13)


def test_an_fd_rule_with_a_hop_limit_is_encoded_like_cangw_A_s_d_e_l_X() -> None:
    raw = encode_request(24, 77, GatewayRule(source=3, destination=7, fd=True, hops=2))
    expected = (
        struct.pack(f"{H}IHHII", 44, 24, 0x1 | 0x4, 77, 0)  # RTM_NEWROUTE, NLM_F_REQUEST|NLM_F_ACK
        + struct.pack(f"{H}BBH", 29, 1, 0x01 | 0x08)  # AF_CAN, CAN->CAN, ECHO|CAN_FD
        + struct.pack(f"{H}HHI", 8, 9, 3)  # CGW_SRC_IF
        + struct.pack(f"{H}HHI", 8, 10, 7)  # CGW_DST_IF
        + struct.pack(f"{H}HHB3x", 5, 13, 2)  # CGW_LIM_HOPS u8, padded
    )
    assert raw == expected
    assert GatewayRule(3, 7, True, 2).command("can0", "vcan-lea") == "cangw -A -s can0 -d vcan-lea -e -l 2 -X"


def test_a_classic_delete_and_the_dump() -> None:
    raw = encode_request(25, 1, GatewayRule(5, 6, hops=1))
    assert struct.unpack_from(f"{H}IHH", raw) == (44, 25, 0x5)
    assert struct.unpack_from(f"{H}BBH", raw, 16) == (29, 1, 0x01)
    dump = encode_request(26, 2)
    assert dump == struct.pack(f"{H}IHHII", 20, 26, 0x1 | 0x300, 2, 0) + struct.pack(f"{H}BBH", 29, 1, 0)


def test_no_rule_without_both_interfaces_a_delete_of_zeroes_would_flush_all() -> None:
    with pytest.raises(ValueError, match="two interface indexes"):
        encode_request(25, 1, GatewayRule(0, 0))


def _attr(kind: int, fmt: str, *values: int) -> bytes:
    payload = struct.pack(f"{H}{fmt}", *values)
    raw = struct.pack(f"{H}HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _message(kind: int, seq: int, body: bytes, flags: int = 0x2) -> bytes:
    return struct.pack(f"{H}IHHII", 16 + len(body), kind, flags, seq, 0) + body


def test_a_listing_gives_rules_counters_and_tells_plain_rules_from_others() -> None:
    ours = struct.pack(f"{H}BBH", 29, 1, 0x09) + _attr(CGW_HANDLED, "I", 12) + _attr(CGW_DELETED, "I", 1) + \
        _attr(CGW_LIM_HOPS, "B", 2) + _attr(CGW_SRC_IF, "I", 3) + _attr(CGW_DST_IF, "I", 7)
    filtered = struct.pack(f"{H}BBH", 29, 1, 0x01) + _attr(CGW_FILTER, "II", 0x100, 0x7FF) + \
        _attr(CGW_SRC_IF, "I", 3) + _attr(CGW_DST_IF, "I", 7)
    ipv4_route = struct.pack(f"{H}BBBBBBBBI", 2, 0, 0, 0, 254, 4, 0, 1, 0)  # rtmsg of another family
    data = _message(24, 9, ours) + _message(24, 9, filtered) + _message(24, 9, ipv4_route) + _message(3, 9, b"\0" * 4)
    replies = decode_replies(data)
    assert [r.kind for r in replies] == ["rule", "rule", "other", "done"]
    assert replies[0].rule == ListedRule(GatewayRule(3, 7, fd=True, hops=2), plain=True, handled=12, deleted=1)
    assert replies[1].rule is not None and not replies[1].rule.plain
    assert replies[1].rule.rule == GatewayRule(3, 7)


def test_an_error_answer_carries_the_negative_errno() -> None:
    body = struct.pack(f"{H}i", -errno.EOPNOTSUPP) + struct.pack(f"{H}IHHII", 40, 24, 5, 4, 0)
    assert decode_replies(_message(2, 4, body, 0)) == [Reply(4, "ack", error=-errno.EOPNOTSUPP)]
    assert decode_replies(_message(2, 4, struct.pack(f"{H}i", 0), 0)) == [Reply(4, "ack", error=0)]


def test_a_truncated_buffer_yields_what_is_whole() -> None:
    whole = _message(3, 1, b"\0" * 4)
    assert decode_replies(whole + whole[:10]) == [Reply(1, "done")]


def test_max_hops_is_read_from_the_module_parameter(tmp_path: Path) -> None:
    path = tmp_path / "max_hops"
    assert max_hops(path) is None and hops_problem(2, path) is None  # not loaded: the kernel's answer decides
    path.write_text("1\n")
    assert max_hops(path) == 1
    problem = hops_problem(2, path)
    assert problem is not None and "max_hops=1" in problem and "modprobe can-gw max_hops=2" in problem
    path.write_text("2\n")
    assert hops_problem(2, path) is None


def test_this_hosts_rtnetlink_answers_and_other_families_routes_are_never_rules() -> None:
    import asyncio

    from lea_peer.can.cangw import Gateway, gateway_answers

    async def ask() -> tuple[str | None, list[ListedRule]]:
        gateway = Gateway()
        try:
            return await gateway_answers(gateway), await gateway.rules()
        finally:
            gateway.close()

    reason, rules = asyncio.run(ask())
    if reason is not None:  # no can-gw: rtnetlink answers the dump with IPv4/IPv6 routes, none is a rule
        assert reason.startswith(("no can-gw in this kernel", "can-gw does not answer", "cannot open netlink"))
        assert rules == []
    assert all(r.rule.source > 0 and r.rule.destination > 0 for r in rules)
