"""Constrained string types shared by the models (checked inside pydantic-core, so replay stays fast)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$"
NAME_RULE = (
    "4 to 64 characters of letters, digits, '-' and '_', not starting or ending with '-' or '_'"
)
INTERFACE_NAME_PATTERN = r"^[^\s/:]+$"
INTERFACE_NAME_RULE = "1 to 15 characters without spaces, '/' or ':' (a Linux interface name)"

#: Names of peers and clusters.
ResourceName = Annotated[
    str, StringConstraints(min_length=4, max_length=64, pattern=NAME_PATTERN)
]
#: Linux network interface names (IFNAMSIZ - 1).
InterfaceName = Annotated[
    str, StringConstraints(min_length=1, max_length=15, pattern=INTERFACE_NAME_PATTERN)
]
Location = Annotated[str, StringConstraints(max_length=64)]
DeviceName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=280)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]

#: Friendly rule per constrained field name, used when turning validation errors into messages.
FIELD_RULES: dict[str, str] = {
    "name": NAME_RULE,
    "bridge_name": INTERFACE_NAME_RULE,
}
