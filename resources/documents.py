"""Reading a resource sent from outside (an API request body): bounded parsing, then strict models.

The models stay lax for Python callers (editors fill them from text boxes); a document on the wire
is held to its JSON types instead: ``"demo": "yes"``, ``"version": "1"`` or ``"bitrate": "5"`` are
refused, not converted (pydantic's strict mode, which in JSON still reads UUIDs, datetimes and
enums from their strings). Before the models see a byte, the document must be UTF-8 JSON of sane
shape; each way it can fail is an ``InvalidDocument`` saying what is wrong with it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from resources.errors import InvalidDocument, InvalidResource, invalid_resource_from_errors

#: Deepest nesting of objects and arrays (a peer needs 4); deeper documents are refused unread.
MAX_DEPTH = 32
#: Most digits of an integer: Python's own limit for converting text (``sys.get_int_max_str_digits``).
MAX_INT_DIGITS = sys.get_int_max_str_digits() or 4300
_GZIP_MAGIC = b"\x1f\x8b"
_SURROGATE = re.compile(r"[\ud800-\udfff]")
M = TypeVar("M", bound=BaseModel)


def parse_resource(model: type[M], raw: bytes, what: str, source: str = "the request body") -> M:
    """``raw`` as a ``model`` named ``what`` ("peer"); it must be a JSON object naming its ``kind``.

    InvalidDocument when ``raw`` is not acceptable JSON, InvalidResource when it is not a valid
    ``what`` (every field problem named, as ``invalid_resource_from`` does).
    """
    if not raw.strip():
        raise InvalidResource(f"invalid {what}: {source} is empty; send the {what} as a JSON object")
    data = load_json(raw, source)
    if not isinstance(data, dict):
        raise InvalidResource(f"invalid {what}: {source} must be a JSON object, not {_json_type(data)}")
    missing_kind = [{"type": "missing", "loc": ("kind",), "msg": "Field required"}] if "kind" not in data else []
    try:
        resource = model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        broken = next((e for e in errors if e["type"] == "json_invalid"), None)
        if broken is not None:  # what the standard parser read, pydantic's did not
            _refuse(f"{source} is not valid JSON: {(broken.get('ctx') or {}).get('error') or broken['msg']}")
        raise invalid_resource_from_errors([*missing_kind, *errors], what) from None
    if missing_kind:
        raise invalid_resource_from_errors(missing_kind, what)
    return resource


def load_json(raw: bytes, source: str = "the request body") -> Any:
    """``raw`` parsed as JSON: UTF-8, standard numbers only, no key twice, nested at most MAX_DEPTH."""
    if raw.startswith(_GZIP_MAGIC):
        _refuse(f"{source} is gzip-compressed; send it uncompressed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse(f"{source} is not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})")
    if text.startswith("\ufeff"):
        _refuse(f"{source} starts with a byte order mark; send JSON without one")
    try:
        data = json.loads(
            text,
            parse_int=lambda digits: _integer(digits, source),
            parse_constant=lambda name: _constant(name, source),
            object_pairs_hook=lambda pairs: _object(pairs, source),
        )
    except json.JSONDecodeError as exc:
        _refuse(f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
    except RecursionError:
        _refuse(f"{source} is nested deeper than {MAX_DEPTH} levels of objects and arrays")
    except ValueError as exc:  # e.g. a number Python refuses to convert
        _refuse(f"{source} is not valid JSON: {exc}")
    _check_shape(data, source)
    return data


def _check_shape(data: Any, source: str) -> None:
    """Depth and text of a parsed document, without recursion (a deep one must not overflow here)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            surrogate = _SURROGATE.search(value)
            if surrogate is not None:
                escape = f"\\u{ord(surrogate[0]):04x}"
                _refuse(f"{source} contains an unpaired surrogate escape ({escape}), which is not a character")
            continue
        if isinstance(value, dict):
            children: list[Any] = [*value.keys(), *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            _refuse(f"{source} is nested deeper than {MAX_DEPTH} levels of objects and arrays")
        stack.extend((child, depth + 1) for child in children if isinstance(child, str | dict | list))


def _integer(digits: str, source: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        _refuse(f"{source} has an integer of {len(digits.lstrip('-'))} digits; at most {MAX_INT_DIGITS} are read")
    return int(digits)


def _constant(name: str, source: str) -> NoReturn:
    _refuse(f"{source} contains {name}, which is not a JSON number")


def _object(pairs: list[tuple[str, Any]], source: str) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                _refuse(f"{source} has the key {_short(key)} twice in one object")
            seen.add(key)
    return result


def _short(text: str, limit: int = 40) -> str:
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[: limit - 4] + "...'"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _refuse(message: str) -> NoReturn:
    raise InvalidDocument(message)
