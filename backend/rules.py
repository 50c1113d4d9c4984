"""The manager's RuleCheck: each change is checked against the working state by ``resources.rules``.

A broken rule raises a typed error naming the rule and the resources involved; the sequencer then
writes nothing for the whole transaction. The rules themselves live in ``resources.rules``, so LEA
pre-checks its forms with the same functions and messages.
"""

from __future__ import annotations

from backend.manager import Change, Delete, Put
from backend.state import State
from resources import rules


def check(state: State, change: Change) -> None:
    if isinstance(change, Put):
        rules.check_put(state, change.resource)
    elif isinstance(change, Delete):
        rules.check_delete(state, change.kind, change.id)
