"""Reading the ownership marker (``resources.agent.ownership_marker``) back from an ``ifalias``."""

from __future__ import annotations

from uuid import UUID

from resources.agent import OWNERSHIP_PREFIX


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
