"""Typed errors: a stable machine-readable code and a sentence a user understands.

Every error the backend raises for bad input or a broken rule is a ``LeaError``; the remote
protocol turns it into RFC 9457 problem+json with the same ``code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from resources.names import FIELD_RULES, INTERFACE_NAME_RULE


class Problem(BaseModel):
    """The wire form of a LeaError (RFC 9457 fields plus our stable code)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    details: dict[str, Any] = {}


class LeaError(Exception):
    code: ClassVar[str] = "error"
    title: ClassVar[str] = "Error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_problem(self) -> Problem:
        return Problem(
            title=self.title,
            status=self.http_status,
            detail=self.message,
            code=self.code,
            details={k: _plain(v) for k, v in self.details.items()},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class InvalidResource(LeaError):
    code = "invalid_resource"
    title = "Invalid resource"
    http_status = 422


class InvalidDocument(LeaError):
    code = "invalid_document"
    title = "Invalid document"
    http_status = 400


class NotFound(LeaError):
    code = "not_found"
    title = "Not found"
    http_status = 404


class AlreadyExists(LeaError):
    code = "already_exists"
    title = "Already exists"
    http_status = 412


class Conflict(LeaError):
    code = "conflict"
    title = "Version conflict"
    http_status = 412


class NameTaken(LeaError):
    code = "name_taken"
    title = "Name already in use"
    http_status = 409


class DeviceIdTaken(LeaError):
    code = "device_id_taken"
    title = "Device id already in use"
    http_status = 409


class MissingReference(LeaError):
    code = "missing_reference"
    title = "Referenced resource does not exist"
    http_status = 422


class ReferencedByCluster(LeaError):
    code = "referenced_by_cluster"
    title = "Still referenced by a cluster"
    http_status = 409


class ClusterDeployed(LeaError):
    code = "cluster_deployed"
    title = "Cluster is deployed"
    http_status = 409


class PeerInDeployedCluster(LeaError):
    code = "peer_in_deployed_cluster"
    title = "Peer is used by a deployed cluster"
    http_status = 409


class PeerBlocked(LeaError):
    code = "peer_blocked"
    title = "Peer blocked by another deployed cluster"
    http_status = 409


class StorageFailed(LeaError):
    code = "storage_failed"
    title = "Storage failed"
    http_status = 503


class SchemaTooNew(LeaError):
    code = "schema_too_new"
    title = "Database from a newer LEA"
    http_status = 500


class DataDirLocked(LeaError):
    code = "data_dir_locked"
    title = "Data directory in use"
    http_status = 409


class DataDirError(LeaError):
    code = "data_dir_error"
    title = "Data directory unusable"
    http_status = 500


class Unauthorized(LeaError):
    code = "unauthorized"
    title = "Authentication required"
    http_status = 401


class Forbidden(LeaError):
    code = "forbidden"
    title = "Not allowed for this role"
    http_status = 403


class PayloadTooLarge(LeaError):
    code = "payload_too_large"
    title = "Request body too large"
    http_status = 413


class InvalidRequest(LeaError):
    code = "invalid_request"
    title = "Invalid request"
    http_status = 400


class ShuttingDown(LeaError):
    code = "shutting_down"
    title = "Backend is shutting down"
    http_status = 503


class Standby(LeaError):
    """A standby server (``serve --standby``): another server is the active one; try it."""

    code = "standby"
    title = "Standby server"
    http_status = 503


ERRORS_BY_CODE: dict[str, type[LeaError]] = {
    cls.code: cls
    for cls in (
        InvalidResource, InvalidDocument, NotFound, AlreadyExists, Conflict, NameTaken, DeviceIdTaken,
        MissingReference, ReferencedByCluster, ClusterDeployed, PeerInDeployedCluster, PeerBlocked,
        StorageFailed, SchemaTooNew, DataDirLocked, DataDirError, ShuttingDown, Standby, Unauthorized, Forbidden,
        PayloadTooLarge, InvalidRequest,
    )
}


def error_from_problem(problem: Problem) -> LeaError:
    """Rebuild the typed error a server sent (unknown codes become a plain LeaError)."""
    cls = ERRORS_BY_CODE.get(problem.code, LeaError)
    return cls(problem.detail, **problem.details)


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("ethernet", "vcan", "can", "online", "offline", "function-after"):
            continue  # discriminator tags, not fields
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(resource)"


def _friendly(err: Any) -> str:
    typ: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    loc = err["loc"]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if typ == "string_pattern_mismatch":
        if field == "name" and "interfaces" not in loc:
            return f"must be {FIELD_RULES['name']}"
        return f"must be {INTERFACE_NAME_RULE}"
    if typ == "string_too_short":
        return f"must be at least {_count(ctx.get('min_length'), 'character')} long"
    if typ == "string_too_long":
        return f"must be at most {_count(ctx.get('max_length'), 'character')} long"
    if typ == "too_short":
        return f"needs at least {_count(ctx.get('min_length'), 'entry', 'entries')}"
    if typ in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than_equal": "<=", "less_than": "<"}[typ]
        bound = next(iter(ctx.values()), "?")
        return f"must be {op} {bound}"
    if typ == "missing":
        return "is required"
    if typ == "extra_forbidden":
        return "is not a known field"
    if typ == "value_error":
        msg = str(err["msg"])
        return msg.removeprefix("Value error, ")
    if typ in _TYPE_RULES:  # strict JSON: the value has the wrong JSON type; nothing is converted
        return f"must be {_TYPE_RULES[typ]}, not {_shown(err.get('input'))}"
    return str(err["msg"])


def _count(number: object, one: str, many: str | None = None) -> str:
    """"1 character", "4 characters" (pydantic's context gives the bound)."""
    return f"{number} {one if number == 1 else (many or one + 's')}"


_TYPE_RULES = {
    "bool_type": "true or false",
    "int_type": "a whole number",
    "float_type": "a number",
    "string_type": "a string",
}


def _shown(value: Any) -> str:
    """A received value in a message, short: a hostile client may send a megabyte."""
    if isinstance(value, str):
        text = repr(value)
        return f"the string {text if len(text) <= 40 else text[:36] + '...' + text[0]}"
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= 40 else text[:36] + "..."
    if isinstance(value, list | tuple):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def invalid_resource_from(exc: ValidationError, what: str = "resource") -> InvalidResource:
    """Turn pydantic's errors into one InvalidResource naming each field and its rule."""
    return invalid_resource_from_errors(exc.errors(), what)


def invalid_resource_from_errors(errors: Sequence[Any], what: str = "resource") -> InvalidResource:
    """The same for a list of pydantic error dicts (e.g. FastAPI's RequestValidationError)."""
    problems = [{"field": _field_path(tuple(err["loc"])), "rule": _friendly(err)} for err in errors]
    if not problems:
        return InvalidResource(f"invalid {what}")
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    message = f"invalid {what}: {first['field']} {first['rule']}{more}"
    return InvalidResource(message, errors=problems)
