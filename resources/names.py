"""Constrained string types shared by the models (checked inside pydantic-core, so replay stays fast).

Every name a user sees (peer and cluster names, locations, interface and device names, tags,
descriptions) refuses control and invisible formatting characters: they could fake a row of
``lea-backend list``, reorder what a table shows (bidi overrides) or make two names look alike.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$"
NAME_RULE = (
    "4 to 64 characters of letters, digits, '-' and '_', not starting or ending with '-' or '_'"
)
INTERFACE_NAME_PATTERN = r"^[^\s/:]+$"
INTERFACE_NAME_RULE = "1 to 15 characters without spaces, '/' or ':' (a Linux interface name)"

#: Unicode categories no user-visible name may contain: controls (NUL, newlines, escape), format
#: characters (bidi overrides and isolates, zero-width characters, the BOM), lone surrogates, and
#: the line and paragraph separators.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: The invisible characters named in the rule, all in the categories above; listed so that a
#: newer Unicode database reclassifying one of them cannot let it through.
FORBIDDEN_CHARACTERS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]  # LRE, RLE, PDF, LRO, RLO
    + [chr(c) for c in range(0x2066, 0x206A)]  # LRI, RLI, FSI, PDI
    + ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2028", "\u2029"]  # zero-width, BOM, separators
)
CLEAN_TEXT_RULE = "must not contain control or invisible formatting characters"


def forbidden_character(text: str) -> str | None:
    """The first character of ``text`` no user-visible name may contain, or None."""
    if text.isprintable() and FORBIDDEN_CHARACTERS.isdisjoint(text):  # the fast path, in C
        return None
    for char in text:
        if char in FORBIDDEN_CHARACTERS or unicodedata.category(char) in FORBIDDEN_CATEGORIES:
            return char
    return None  # e.g. a no-break space: not printable by Python's rule, yet visible


def describe_character(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``; controls have no Unicode name: ``U+000A``."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


_NONE_FORBIDDEN = FORBIDDEN_CHARACTERS.isdisjoint


def _clean(text: str) -> str:
    if text.isprintable() and _NONE_FORBIDDEN(text):  # forbidden_character's fast path, one call less
        return text
    found = forbidden_character(text)
    if found is not None:
        raise PydanticCustomError(
            "control_character", "{rule} (found {found})",
            {"rule": CLEAN_TEXT_RULE, "found": describe_character(found)},
        )
    return text


#: The check for every user-visible name: after the length and pattern checks of pydantic-core.
CleanText = AfterValidator(_clean)

#: Names of peers and clusters (their pattern is ASCII, so they are clean by construction).
ResourceName = Annotated[
    str, StringConstraints(min_length=4, max_length=64, pattern=NAME_PATTERN)
]
#: Linux network interface names (IFNAMSIZ - 1).
InterfaceName = Annotated[
    str, StringConstraints(min_length=1, max_length=15, pattern=INTERFACE_NAME_PATTERN), CleanText
]
Location = Annotated[str, StringConstraints(max_length=64), CleanText]
DeviceName = Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText]
Description = Annotated[str, StringConstraints(max_length=280), CleanText]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText]

#: Friendly rule per constrained field name, used when turning validation errors into messages.
FIELD_RULES: dict[str, str] = {
    "name": NAME_RULE,
    "bridge_name": INTERFACE_NAME_RULE,
}
