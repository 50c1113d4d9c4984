"""cangw rules (the kernel's can-gw module) over rtnetlink, without the can-utils ``cangw`` binary.

A rule routes CAN frames from one CAN interface to another. It is added with RTM_NEWROUTE,
removed with RTM_DELROUTE and listed with a RTM_GETROUTE dump, all with family AF_CAN (29) and a
``struct rtcanmsg`` (``<linux/can/gw.h>``: u8 can_family, u8 gwtype = CGW_TYPE_CAN_CAN, u16 flags)
followed by attributes: CGW_SRC_IF and CGW_DST_IF (u32 ifindexes, both mandatory: a delete with
both 0 flushes every rule, which is never sent here), CGW_LIM_HOPS (u8) and, in a listing, the
counters CGW_HANDLED / CGW_DROPPED / CGW_DELETED (u32, only when non-zero).

Every rule this agent makes echoes the frames it sends (CGW_FLAGS_CAN_ECHO, ``cangw -e``: without
it a frame routed into a vcan reaches no socket on it), carries a hop limit and handles either
classic frames or, with CGW_FLAGS_CAN_FD (``cangw -X``), CAN FD frames. The kernel keeps identical
rules twice (frames are then doubled) and deletes only an exact match (flags, hop limit, no
modifications), so callers list before they add. Rules of a deleted device go with it.

Without can-gw, rtnetlink answers a RTM_DELROUTE of family AF_CAN with EOPNOTSUPP and turns a dump
into a dump of every family's routes (those messages are skipped here): :func:`gateway_answers`
tells the two apart.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lea_peer.sockets import namespace_socket

AF_CAN = 29
NETLINK_ROUTE = 0
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300

CGW_TYPE_CAN_CAN = 1
# Attribute types (enum in <linux/can/gw.h>, in order from CGW_UNSPEC = 0).
CGW_MOD_AND, CGW_MOD_OR, CGW_MOD_XOR, CGW_MOD_SET = 1, 2, 3, 4
CGW_CS_XOR, CGW_CS_CRC8 = 5, 6
CGW_HANDLED, CGW_DROPPED = 7, 8
CGW_SRC_IF, CGW_DST_IF = 9, 10
CGW_FILTER, CGW_DELETED, CGW_LIM_HOPS, CGW_MOD_UID = 11, 12, 13, 14
CGW_FDMOD_AND, CGW_FDMOD_OR, CGW_FDMOD_XOR, CGW_FDMOD_SET = 15, 16, 17, 18
#: Attributes that change frames or select some of them: a rule with one is not a plain route.
_NOT_PLAIN = frozenset({
    CGW_MOD_AND, CGW_MOD_OR, CGW_MOD_XOR, CGW_MOD_SET, CGW_CS_XOR, CGW_CS_CRC8, CGW_FILTER, CGW_MOD_UID,
    CGW_FDMOD_AND, CGW_FDMOD_OR, CGW_FDMOD_XOR, CGW_FDMOD_SET,
})

CGW_FLAGS_CAN_ECHO = 0x01
CGW_FLAGS_CAN_SRC_TSTAMP = 0x02
CGW_FLAGS_CAN_IIF_TX_OK = 0x04
CGW_FLAGS_CAN_FD = 0x08

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
RTCANMSG = struct.Struct("=BBH")  # can_family, gwtype, flags
NLATTR = struct.Struct("=HH")  # len (header included), type
_ERRNO = struct.Struct("=i")
_U32 = struct.Struct("=I")

#: Where the module shows its max_hops parameter (readable by everyone).
MAX_HOPS_PATH = Path("/sys/module/can_gw/parameters/max_hops")
#: What a route through the bridge needs (device -> vcan bridge -> another device).
BRIDGE_HOPS = 2
_TIMEOUT_S = 5.0


class GatewayFailure(Exception):
    """A can-gw request failed; ``errno`` is the kernel's answer (0: no answer), ``str()`` the cause."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.errno = code


@dataclass(frozen=True, slots=True)
class GatewayRule:
    """One plain CAN-to-CAN route: every frame of its kind (classic or FD) from ``source`` to
    ``destination`` (ifindexes), echoed, with at most ``hops`` gateway hops (0: the module's)."""

    source: int
    destination: int
    fd: bool = False
    hops: int = 0
    echo: bool = True

    @property
    def flags(self) -> int:
        return (CGW_FLAGS_CAN_ECHO if self.echo else 0) | (CGW_FLAGS_CAN_FD if self.fd else 0)

    def command(self, source: str, destination: str) -> str:
        """The same rule written as ``cangw`` options (with interface names)."""
        parts = ["cangw -A -s", source, "-d", destination]
        if self.echo:
            parts.append("-e")
        if self.hops:
            parts += ["-l", str(self.hops)]
        if self.fd:
            parts.append("-X")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ListedRule:
    """A rule as the kernel lists it, with its counters. ``plain`` is False for a rule with frame
    modifications, a filter or other flags than echo/FD: never one of ours."""

    rule: GatewayRule
    plain: bool = True
    handled: int = 0
    dropped: int = 0
    deleted: int = 0


def _attribute(kind: int, payload: bytes) -> bytes:
    raw = NLATTR.pack(NLATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def encode_request(message_type: int, sequence: int, rule: GatewayRule | None = None) -> bytes:
    """A netlink request: RTM_NEWROUTE / RTM_DELROUTE for ``rule`` (acked) or, without a rule,
    the RTM_GETROUTE dump of every rule."""
    if rule is None:
        body = RTCANMSG.pack(AF_CAN, CGW_TYPE_CAN_CAN, 0)
        flags = NLM_F_REQUEST | NLM_F_DUMP
    else:
        if rule.source <= 0 or rule.destination <= 0:
            # Both 0 in a delete would flush every rule on the bench.
            raise ValueError("a can-gw rule needs two interface indexes")
        if not 0 <= rule.hops <= 255:
            raise ValueError(f"hop limit {rule.hops} does not fit a byte")
        body = RTCANMSG.pack(AF_CAN, CGW_TYPE_CAN_CAN, rule.flags)
        body += _attribute(CGW_SRC_IF, _U32.pack(rule.source)) + _attribute(CGW_DST_IF, _U32.pack(rule.destination))
        if rule.hops:
            body += _attribute(CGW_LIM_HOPS, bytes((rule.hops,)))
        flags = NLM_F_REQUEST | NLM_F_ACK
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), message_type, flags, sequence, 0) + body


@dataclass(frozen=True, slots=True)
class Reply:
    """One netlink message of an answer: a rule, an error/ack (``error`` is a negative errno or
    0), the end of a dump, or something else (another family's route, skipped)."""

    sequence: int
    kind: str  # "rule" | "ack" | "done" | "other"
    error: int = 0
    rule: ListedRule | None = None


def _attributes(data: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + NLATTR.size <= len(data):
        length, kind = NLATTR.unpack_from(data, offset)
        if length < NLATTR.size or offset + length > len(data):
            return
        yield kind & 0x3FFF, data[offset + NLATTR.size : offset + length]  # without NLA_F_NESTED/NET_BYTEORDER
        offset += (length + 3) & ~3


def decode_rule(body: bytes) -> ListedRule | None:
    """The rule in one RTM_NEWROUTE body (rtcanmsg and attributes); None if it is not a CAN-to-CAN rule."""
    if len(body) < RTCANMSG.size:
        return None
    family, gwtype, flags = RTCANMSG.unpack_from(body)
    if family != AF_CAN or gwtype != CGW_TYPE_CAN_CAN:
        return None
    values: dict[int, bytes] = dict(_attributes(body[RTCANMSG.size :]))

    def u32(kind: int) -> int:
        raw = values.get(kind, b"")
        return _U32.unpack(raw[:4])[0] if len(raw) >= 4 else 0

    hops = values.get(CGW_LIM_HOPS, b"\0")[:1]
    rule = GatewayRule(
        source=u32(CGW_SRC_IF), destination=u32(CGW_DST_IF), fd=bool(flags & CGW_FLAGS_CAN_FD),
        hops=hops[0] if hops else 0, echo=bool(flags & CGW_FLAGS_CAN_ECHO),
    )
    plain = not (flags & ~(CGW_FLAGS_CAN_ECHO | CGW_FLAGS_CAN_FD)) and not _NOT_PLAIN & values.keys()
    return ListedRule(rule, plain, u32(CGW_HANDLED), u32(CGW_DROPPED), u32(CGW_DELETED))


def decode_replies(data: bytes) -> list[Reply]:
    """Every netlink message in one received buffer."""
    replies = []
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _flags, sequence, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            break
        body = data[offset + NLMSGHDR.size : offset + length]
        if kind == NLMSG_ERROR:
            code = _ERRNO.unpack_from(body)[0] if len(body) >= 4 else -errno.EPROTO
            replies.append(Reply(sequence, "ack", error=code))
        elif kind == NLMSG_DONE:
            replies.append(Reply(sequence, "done"))
        elif kind == RTM_NEWROUTE and (rule := decode_rule(body)) is not None:
            replies.append(Reply(sequence, "rule", rule=rule))
        else:
            replies.append(Reply(sequence, "other"))
        offset += (length + 3) & ~3
    return replies


def max_hops(path: Path | None = None) -> int | None:
    """can-gw's ``max_hops`` module parameter; None when the module is not loaded."""
    try:
        return int((path or MAX_HOPS_PATH).read_text().strip())
    except (OSError, ValueError):
        return None


def hops_problem(hops: int, path: Path | None = None) -> str | None:
    """Why a rule with hop limit ``hops`` is refused (EINVAL), if the module's max_hops is the cause."""
    allowed = max_hops(path)
    if allowed is not None and hops > allowed:
        return (
            f"can-gw was loaded with max_hops={allowed}, routes through the CAN bridge need {hops} "
            f"(modprobe -r can-gw; modprobe can-gw max_hops={BRIDGE_HOPS})"
        )
    return None


class Gateway:
    """The can-gw rules of one network namespace (None: the agent's own), over one netlink socket.
    Requests are serialised; each waits at most 5 s for the kernel's answer."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._sock: socket.socket | None = None
        self._sequence = int.from_bytes(os.urandom(2), "big")
        self._lock = asyncio.Lock()

    async def _socket(self) -> socket.socket:
        if self._sock is None:
            loop = asyncio.get_running_loop()
            sock = await loop.run_in_executor(
                None, namespace_socket, self.netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE
            )
            sock.bind((0, 0))
            self._sock = sock
        return self._sock

    async def _exchange(self, message_type: int, rule: GatewayRule | None) -> list[ListedRule]:
        async with self._lock:
            sock = await self._socket()
            loop = asyncio.get_running_loop()
            self._sequence = (self._sequence + 1) & 0xFFFFFFFF
            sequence = self._sequence
            await loop.sock_sendall(sock, encode_request(message_type, sequence, rule))
            rules: list[ListedRule] = []
            while True:
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 65536), _TIMEOUT_S)
                except TimeoutError:
                    raise GatewayFailure("the kernel did not answer a can-gw request within 5 s") from None
                for reply in decode_replies(data):
                    if reply.sequence != sequence:
                        continue  # an answer to an earlier, abandoned request
                    if reply.kind == "ack":
                        if reply.error:
                            code = -reply.error
                            raise GatewayFailure(os.strerror(code), code)
                        return rules
                    if reply.kind == "done":
                        return rules
                    if reply.rule is not None:
                        rules.append(reply.rule)

    async def rules(self) -> list[ListedRule]:
        """Every CAN-to-CAN rule in the namespace (not only ours), newest first."""
        return await self._exchange(RTM_GETROUTE, None)

    async def add(self, rule: GatewayRule) -> None:
        await self._exchange(RTM_NEWROUTE, rule)

    async def delete(self, rule: GatewayRule) -> None:
        """Delete one rule exactly like ``rule``; GatewayFailure(EINVAL) when there is none."""
        await self._exchange(RTM_DELROUTE, rule)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def gateway_answers(gateway: Gateway) -> str | None:
    """None when can-gw handles AF_CAN route requests in the gateway's namespace, else why not.

    A delete of a rule between two interfaces that cannot exist (ifindex 2**32-1) is answered
    EINVAL ("no such rule") by can-gw and EOPNOTSUPP by rtnetlink when can-gw is missing; it
    changes nothing either way."""
    impossible = GatewayRule(0xFFFFFFFF, 0xFFFFFFFE, hops=0)
    try:
        await gateway.delete(impossible)
    except GatewayFailure as exc:
        if exc.errno == errno.EINVAL:
            return None
        if exc.errno == errno.EOPNOTSUPP:
            return f"no can-gw in this kernel (modprobe can-gw max_hops={BRIDGE_HOPS})"
        return f"can-gw does not answer: {exc}"
    except OSError as exc:
        return f"cannot open netlink for can-gw: {exc.strerror or exc}"
    return None  # deleted nothing, said so: it answers
