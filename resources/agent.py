"""The peer agent protocol (``WS /api/v1/peer/connect``): what `lea-peer` and the backend say.

One JSON text message per WebSocket frame, each with a ``type``. The agent opens with ``hello``;
the backend answers ``welcome`` and then sends ``configure`` whenever the peer's desired
configuration changes (and once right after the welcome). The agent answers every configure with
progressive ``report`` messages of the same ``generation``; both sides send ``heartbeat`` every
``heartbeat_s`` and treat ``timeout_s`` of silence as a lost connection. docs/protocol.md has the
close codes and limits; they are defined here so that both ends use the same numbers.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter, field_validator

from resources.base import MAX_INT64, Model
from resources.configuration import ParameterReport, PeerConfiguration

#: Version of this protocol; a backend refuses a hello of another version (close ``UNSUPPORTED``).
PROTOCOL = 1
#: Largest message either side accepts (bytes of one frame).
MAX_MESSAGE_BYTES = 1024 * 1024
#: Path of the agent endpoint on the backend.
CONNECT_PATH = "/api/v1/peer/connect"


class TunnelType(StrEnum):
    """Encapsulations a peer's kernel can create for a cluster's tunnel (GreInterface)."""

    GRETAP = "gretap"
    VXLAN = "vxlan"


class CanSupport(StrEnum):
    """How an agent carries a cluster's CAN traffic (docs/benches.md, "CAN")."""

    #: vcan bridge, cangw routes, the relay on an AF_CAN socket (real CAN controllers).
    KERNEL = "kernel"
    #: An in-process frame hub and the relay; only simulated ECU endpoints (``--can-sim``) attach.
    USERSPACE = "userspace"
    #: The agent refuses every CAN parameter (``lea-peer run --can none``).
    NONE = "none"


class Capabilities(Model):
    """What the agent's kernel can do, probed at start-up in a scratch namespace."""

    tunnels: tuple[TunnelType, ...] = ()
    can: CanSupport = CanSupport.NONE
    #: MTU of the underlay interface (the one carrying ``underlay_address``); 0 if unknown.
    underlay_mtu: int = Field(default=0, ge=0, le=65535)

    @field_validator("can", mode="before")
    @classmethod
    def _release_1_feature_list(cls, value: object) -> object:
        """An agent of release 1 sent a list of kernel features (always empty in practice)."""
        if isinstance(value, list | tuple):
            return CanSupport.KERNEL if "vcan" in value else CanSupport.NONE
        return value


class AgentHello(Model):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL
    peer_id: UUID
    agent_version: str = Field(max_length=64)
    #: The address the other members reach this bench at (the tunnels' underlay).
    underlay_address: str = Field(max_length=64)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    #: The agent's current view of the configuration it last applied (empty after a clean start).
    applied: tuple[ParameterReport, ...] = ()


class AgentReport(Model):
    """The state of every parameter of the configuration of ``generation`` (the full list)."""

    type: Literal["report"] = "report"
    generation: int = Field(ge=0, le=MAX_INT64)
    parameters: tuple[ParameterReport, ...]


class Heartbeat(Model):
    type: Literal["heartbeat"] = "heartbeat"


class Bye(Model):
    """The agent is shutting down on purpose (the backend marks the peer Offline at once)."""

    type: Literal["bye"] = "bye"
    reason: str = Field(default="", max_length=200)


class Welcome(Model):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL
    heartbeat_s: float = Field(gt=0)
    timeout_s: float = Field(gt=0)


class Configure(Model):
    """The configuration the peer should have; a newer generation replaces any older one."""

    type: Literal["configure"] = "configure"
    generation: int = Field(ge=0, le=MAX_INT64)
    configuration: PeerConfiguration


AgentMessage = Annotated[AgentHello | AgentReport | Heartbeat | Bye, Field(discriminator="type")]
BackendMessage = Annotated[Welcome | Configure | Heartbeat, Field(discriminator="type")]
AGENT_MESSAGE: TypeAdapter[AgentHello | AgentReport | Heartbeat | Bye] = TypeAdapter(AgentMessage)
BACKEND_MESSAGE: TypeAdapter[Welcome | Configure | Heartbeat] = TypeAdapter(BackendMessage)


class CloseCode(IntEnum):
    """WebSocket close codes of the agent endpoint; ``final`` ones make the agent exit."""

    SHUTDOWN = 1001  # the backend stops: reconnect with backoff
    MESSAGE_TOO_BIG = 1009
    BAD_MESSAGE = 4400  # not a valid message, or hello missing / out of order
    BAD_CREDENTIALS = 4401  # token unknown or revoked
    WRONG_PEER = 4403  # token not a peer token, or bound to another peer
    PEER_DELETED = 4404  # no such peer (deleted, or never created)
    TIMEOUT = 4408  # no message within timeout_s
    REPLACED = 4409  # a newer connection for the same peer took over
    UNSUPPORTED = 4426  # protocol version not supported

    @property
    def final(self) -> bool:
        """True when retrying cannot help: the agent exits with a clear line instead."""
        return self in _FINAL


_FINAL = frozenset(
    {
        CloseCode.BAD_MESSAGE,
        CloseCode.BAD_CREDENTIALS,
        CloseCode.WRONG_PEER,
        CloseCode.PEER_DELETED,
        CloseCode.REPLACED,
        CloseCode.UNSUPPORTED,
    }
)


def ownership_marker(cluster: UUID, parameter: UUID) -> str:
    """The ``ifalias`` the agent sets on every link it creates: only marked links are deleted."""
    return f"lea:{cluster}:{parameter}"


OWNERSHIP_PREFIX = "lea:"


def parse_ownership_marker(alias: str | None) -> tuple[UUID, UUID] | None:
    """(cluster, parameter) of a marker ``lea:<cluster>:<parameter>``; None for anything else (a
    link without alias, or one a person named), so such a link is never taken for ours."""
    if not alias or not alias.startswith(OWNERSHIP_PREFIX):
        return None
    parts = alias[len(OWNERSHIP_PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    try:
        return UUID(parts[0]), UUID(parts[1])
    except ValueError:
        return None
