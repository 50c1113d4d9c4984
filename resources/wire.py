"""Messages of an event subscription, the same in-process and on the WebSocket."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from resources.base import Model
from resources.events import SCHEMA_VERSION, Event


class Hello(Model):
    """The subscription is registered; `revision` is the published revision at that moment."""

    type: Literal["hello"] = "hello"
    epoch: str
    revision: int
    schema_version: int = SCHEMA_VERSION


class EventBatch(Model):
    """The events of one transaction (contiguous revisions, one tx); apply them at once."""

    type: Literal["events"] = "events"
    events: tuple[Event, ...]


class Resync(Model):
    """The subscriber cannot be served incrementally: fetch a fresh snapshot."""

    type: Literal["resync"] = "resync"
    reason: str


class Ping(Model):
    type: Literal["ping"] = "ping"


WatchMessage = Annotated[Hello | EventBatch | Resync | Ping, Field(discriminator="type")]
