"""How a server answers while many watchers replay its whole ring (issue #9: replays never freeze it).

A real ``lea-backend serve`` on loopback gets a ring of RING transactions (~28 kB each); then N
watchers (their own process: tests/helpers/replayers.py) ask ``watch?after=0`` at once while this
process probes ``/healthz`` every 20 ms. The baseline is the same probe on the same server with no
replay running, in the same run.

    .venv/bin/python bench/replays.py [--watchers 20] [--ring 250] [--quick]

The last lines are the figures: probe latency p50 / p99 / max during the replays and idle, and the
ratio of the maxima (target: every probe within 100 ms while 20 replays run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import ROOT, percentile

sys.path.insert(0, str(ROOT))

from tests.helpers.ring import fill_ring
from tests.helpers.server import create_token, running_server


def probe(http: httpx.Client, until: float | None, replayers: subprocess.Popen[bytes] | None) -> list[float]:
    latencies: list[float] = []
    while (replayers.poll() is None) if replayers is not None else (time.monotonic() < (until or 0)):
        started = time.monotonic()
        response = http.get("/healthz")
        assert response.status_code == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.02)
    return latencies


def figures(latencies: list[float]) -> str:
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies) * 1000:.1f} ms"


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--watchers", type=int, default=20)
    args.add_argument("--ring", type=int, default=250, help="transactions in the ring (~28 kB each)")
    args.add_argument("--quick", action="store_true", help="5 watchers, a 100-transaction ring")
    options = args.parse_args()
    if options.quick:
        options.watchers, options.ring = 5, 100
    data = Path(tempfile.mkdtemp(prefix="lea-bench-replays-")) / "data"
    editor = create_token(data, "editor", "bench")
    with running_server(data) as server:
        fill_ring(server, editor, count=options.ring)
        with server.client(editor) as http:
            idle = probe(http, time.monotonic() + 3.0, None)
            replayers = subprocess.Popen(
                [sys.executable, "-m", "tests.helpers.replayers", server.ws_url, editor, str(options.watchers),
                 str(options.ring)],
                cwd=ROOT,
            )
            busy = probe(http, None, replayers)
            if replayers.wait(60) != 0:
                print("replayers failed", file=sys.stderr)
                return 1
    print(f"{options.watchers} watchers replaying {options.ring} transactions: {len(busy)} probes")
    print(f"healthz while replaying: {figures(busy)}")
    print(f"healthz idle (baseline): {figures(idle)}")
    print(f"max while replaying / max idle: {max(busy) / max(idle):.1f}x; target max < 100 ms: "
          f"{'met' if max(busy) < 0.1 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
