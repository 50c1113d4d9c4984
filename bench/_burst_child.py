"""The embedded backend's child process of bench/gui_burst.py: ``lea-backend serve --child`` - the
very code LEA starts - plus the benchmark's burst writer, which must run inside the backend's process.

``python bench/_burst_child.py serve --child ...`` (the arguments of ``lea-backend``). SIGUSR1 starts
the burst planned in ``$LEA_BENCH_PLAN`` (bench/_burst.py); a backend-side thread submits every
transaction, open loop, and once all are committed writes ``$LEA_BENCH_RESULT``: JSON with
``started`` and ``committed`` (``time.perf_counter()``: CLOCK_MONOTONIC on Linux, one clock for every
process, so the benchmark can compare them with its own), ``events`` and ``errors``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _burst import ACTOR, build, load_plan

from backend import cli
from backend.backend import Backend
from backend.server import serve as serve_module

BACKENDS: list[Backend] = []


class RecordedBackend(Backend):
    """The serve command's Backend, remembered so that the burst can write through its manager."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        BACKENDS.append(self)


def burst() -> None:
    manager = BACKENDS[-1].manager
    fleet, txs = load_plan(Path(os.environ["LEA_BENCH_PLAN"]))
    since = datetime.now(UTC)
    errors: list[str] = []
    started = time.perf_counter()
    futures = [manager.submit([build(op, fleet, manager, since) for op in tx], ACTOR) for tx in txs]
    for future in futures:
        try:
            future.result(timeout=120)
        except Exception as exc:
            errors.append(repr(exc))
    committed = time.perf_counter()
    result = {"started": started, "committed": committed, "events": sum(len(t) for t in txs), "errors": errors}
    target = Path(os.environ["LEA_BENCH_RESULT"])
    partial = target.with_suffix(".part")
    partial.write_text(json.dumps(result), encoding="utf-8")
    partial.replace(target)  # the benchmark never reads half a file


def on_signal(*_: object) -> None:
    threading.Thread(target=burst, name="bench-burst-writer", daemon=True).start()


if __name__ == "__main__":
    serve_module.Backend = RecordedBackend  # type: ignore[attr-defined]  # serve() opens its Backend by this name
    signal.signal(signal.SIGUSR1, on_signal)
    sys.exit(cli.main(sys.argv[1:]))
