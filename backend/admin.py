"""Administrative operations on a store: verify a replay against the newest checkpoint (CLI, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from backend.restore import replay
from backend.storage.base import EventStore
from resources.kinds import ResourceKind
from resources.resource import AnyResource


@dataclass
class VerifyReport:
    events: int
    checkpoint_revision: int | None
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify(store: EventStore) -> VerifyReport:
    """Replay every event from zero and compare with the newest valid checkpoint."""
    checkpoint = store.load_checkpoint()
    if checkpoint is None:
        return VerifyReport(events=store.event_count(), checkpoint_revision=None)
    state, _ = replay(store, use_checkpoint=False, up_to=checkpoint.revision)
    expected = {(r.kind, r.id): r for r in checkpoint.resources}
    actual = {(r.kind, r.id): r for r in state.persisted()}
    report = VerifyReport(events=store.event_count(), checkpoint_revision=checkpoint.revision)
    report.mismatches = describe_differences(expected, actual, "checkpoint", "replay")
    return report


def describe_differences(
    left: dict[tuple[ResourceKind, UUID], AnyResource],
    right: dict[tuple[ResourceKind, UUID], AnyResource],
    left_name: str,
    right_name: str,
) -> list[str]:
    out = []
    for key in sorted(left.keys() | right.keys(), key=lambda k: (k[0].value, str(k[1]))):
        a, b = left.get(key), right.get(key)
        if a is None:
            out.append(f"{key[0]} {key[1]} is in the {right_name} but not in the {left_name}")
        elif b is None:
            out.append(f"{key[0]} {key[1]} is in the {left_name} but not in the {right_name}")
        elif a != b:
            out.append(f"{key[0]} {key[1]} differs: {left_name} v{a.version}, {right_name} v{b.version}")
    return out
