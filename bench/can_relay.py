"""CAN frames through one userspace relay hop vs a plain UDP echo, same run, same machine.

The measured side, a process of its own: ``UserspaceCanPlane`` with a simulated ECU endpoint
(can0 at 127.0.0.1:E), the hub, both routes and a CanConnection relay (127.0.0.1:P <-> 127.0.0.2:P),
applied from parameters shaped like the backend's. This script plays the ECU (it sends cannelloni
datagrams to E, one frame each) and the remote relay (a socket at 127.0.0.2:P that receives what
the relay sends). So each frame makes one trip through the agent's code: decode at the simulated
endpoint, the route, the hub, the relay's batching and encoding, one UDP send.

The baseline, a process of its own too: a plain UDP echo on the same asyncio loop shape (a reader
on a non-blocking socket, recv and sendto back to the sender, no decoding). This script sends the
same datagrams to it and receives the echoes.

Figures per side: frames/s with at most WINDOW frames in flight (a frame counts when it arrived at
the receiver; the relay batches frames that arrive together, the echo cannot), and the latency of
one frame sent alone (ping-pong), p50 and p99; then the ratios relay / echo.

    .venv/bin/python bench/can_relay.py [--quick] [--frames N] [--pings N] [--window W] [--fd]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from _common import ROOT, machine, parser, percentile

LOCAL, REMOTE, ECU_HOST = "127.0.0.1", "127.0.0.2", "127.0.0.1"


# -- the processes measured ----------------------------------------------------------------------
async def relay_worker(ecu_port: int, relay_port: int) -> None:
    from lea_peer.can.ecu_sim import EcuAddress
    from lea_peer.can.userspace import UserspaceCanPlane
    from resources.configuration import Parameter, ParameterKind, ParameterPresent, Target

    def make(kind: ParameterKind, value: dict[str, str | int | bool], *deps: Parameter) -> Parameter:
        return Parameter(id=uuid.uuid4(), kind=kind, target=Target.PRESENT, value=value,
                         dependencies=tuple(d.id for d in deps))

    device = make(ParameterKind.DEVICE_INTERFACE, {"interface": "can0", "can": "vcan"})
    bridge = make(ParameterKind.CAN_BRIDGE, {"name": "vcan-lea"})
    parameters = [
        device, bridge,
        make(ParameterKind.CAN_CONNECTION, {"role": "server", "local": LOCAL, "remote": REMOTE, "port": relay_port},
             bridge),
        make(ParameterKind.CAN_LOCAL_ROUTE, {"source": "can0", "destination": "vcan-lea", "fd": True}, device, bridge),
        make(ParameterKind.CAN_LOCAL_ROUTE, {"source": "vcan-lea", "destination": "can0", "fd": True}, device, bridge),
    ]
    plane = UserspaceCanPlane(simulations=[EcuAddress("can0", ECU_HOST, ecu_port)], lost_after_s=3600)
    await plane.start()
    cluster = uuid.uuid4()
    for parameter in parameters:
        status = await plane.apply(cluster, parameter)
        if not isinstance(status, ParameterPresent):
            raise SystemExit(f"cannot set up the relay: {status}")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the driver closes stdin
    state = await plane.check(cluster, parameters[2])
    print(json.dumps(getattr(state, "metrics", {})), flush=True)
    await plane.close()


async def echo_worker(port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind((ECU_HOST, port))

    def readable() -> None:
        for _ in range(64):
            try:
                data, sender = sock.recvfrom(65535)
            except BlockingIOError:
                return
            with contextlib.suppress(BlockingIOError):
                sock.sendto(data, sender)

    loop.add_reader(sock.fileno(), readable)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    print("{}", flush=True)
    loop.remove_reader(sock.fileno())
    sock.close()


# -- the driver ----------------------------------------------------------------------------------
@dataclass
class Side:
    name: str
    frames_per_s: float
    lost: int
    p50_ms: float
    p99_ms: float
    extra: dict[str, Any]


@contextlib.contextmanager
def worker(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen([sys.executable, __file__, "--worker", *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"worker {args} did not start: {line!r}")
        yield process
    finally:
        if process.poll() is None:
            assert process.stdin is not None
            process.stdin.close()
            process.wait(10)


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    line = process.stdout.readline()
    process.wait(10)
    result: dict[str, Any] = json.loads(line or "{}")
    return result


def free_port(*hosts: str) -> int:
    sys.path.insert(0, str(ROOT))
    from tests.helpers.can import free_port as find

    return find(*hosts)


def measure(name: str, send: Callable[[int], None], receive: Callable[[float], int],
            frames: int, pings: int, window: int) -> tuple[float, int, list[float]]:
    """frames/s with ``window`` in flight, frames lost, ping-pong latencies (s)."""
    for i in range(50):  # warm up
        send(i)
        receive(2.0)
    latencies = []
    for i in range(pings):
        started = time.perf_counter()
        send(i)
        if receive(2.0) != 1:
            raise SystemExit(f"{name}: a ping frame did not come back")
        latencies.append(time.perf_counter() - started)
    sent = received = 0
    started = time.perf_counter()
    while received < frames:
        while sent < frames and sent - received < window:
            send(sent)
            sent += 1
        got = receive(1.0)
        if got == 0:
            break  # lost in flight: the rest will not come
        received += got
    elapsed = time.perf_counter() - started
    return received / elapsed, sent - received, latencies


def bench_relay(frames: int, pings: int, window: int, fd: bool) -> Side:
    from lea_peer.can.cannelloni import CanFrame, decode, encode

    ecu_port, relay_port = free_port(ECU_HOST), free_port(LOCAL, REMOTE)
    payload = bytes(range(64)) if fd else bytes(range(8))
    datagrams = [encode(i, [CanFrame(0x100 | (i & 0xFF), payload, fd=fd)]) for i in range(256)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ecu, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as remote:
        remote.bind((REMOTE, relay_port))
        ecu.bind((ECU_HOST, 0))
        with worker("relay", str(ecu_port), str(relay_port)) as process:

            def send(i: int) -> None:
                ecu.sendto(datagrams[i & 0xFF], (ECU_HOST, ecu_port))

            def receive(timeout: float) -> int:
                remote.settimeout(timeout)
                while True:
                    try:
                        data = remote.recv(65535)
                    except TimeoutError:
                        return 0
                    count = len(decode(data).frames)
                    if count:  # not a keepalive
                        return count

            rate, lost, latencies = measure("relay", send, receive, frames, pings, window)
            metrics = finish(process)
    return Side("relay", rate, lost, percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3, metrics)


def bench_echo(frames: int, pings: int, window: int, fd: bool) -> Side:
    from lea_peer.can.cannelloni import CanFrame, encode

    port = free_port(ECU_HOST)
    payload = bytes(range(64)) if fd else bytes(range(8))
    datagram = encode(0, [CanFrame(0x100, payload, fd=fd)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client, worker("echo", str(port)) as process:
        client.bind((ECU_HOST, 0))

        def send(i: int) -> None:
            client.sendto(datagram, (ECU_HOST, port))

        def receive(timeout: float) -> int:
            client.settimeout(timeout)
            try:
                client.recv(65535)
            except TimeoutError:
                return 0
            return 1

        rate, lost, latencies = measure("echo", send, receive, frames, pings, window)
        finish(process)
    return Side("udp echo", rate, lost, percentile(latencies, 50) * 1e3, percentile(latencies, 99) * 1e3, {})


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(ROOT))
        if sys.argv[2] == "relay":
            asyncio.run(relay_worker(int(sys.argv[3]), int(sys.argv[4])))
        else:
            asyncio.run(echo_worker(int(sys.argv[3])))
        return
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=None,
                   help="frames of the throughput run (default 200000, quick 20000)")
    p.add_argument("--pings", type=int, default=None,
                   help="frames sent alone for the latency (default 5000, quick 500)")
    p.add_argument("--window", type=int, default=64, help="frames in flight in the throughput run (default 64)")
    p.add_argument("--fd", action="store_true", help="64-byte CAN FD frames (default: 8-byte classic frames)")
    args = p.parse_args()
    frames = args.frames or (20_000 if args.quick else 200_000)
    pings = args.pings or (500 if args.quick else 5_000)
    print(f"# can_relay: {frames} frames (window {args.window}), {pings} pings,"
          f" {'CAN FD 64 B' if args.fd else 'classic 8 B'} frames; {machine(ROOT)}")
    echo = bench_echo(frames, pings, args.window, args.fd)
    relay = bench_relay(frames, pings, args.window, args.fd)
    for side in (echo, relay):
        print(f"{side.name:>9}: {side.frames_per_s:10.0f} frames/s (lost {side.lost}),"
              f" latency p50 {side.p50_ms:.3f} ms, p99 {side.p99_ms:.3f} ms"
              + (f"; relay metrics {side.extra}" if side.extra else ""))
    print(f"   ratios: frames/s relay/echo {relay.frames_per_s / echo.frames_per_s:.2f},"
          f" p50 latency relay/echo {relay.p50_ms / echo.p50_ms:.2f}, p99 {relay.p99_ms / echo.p99_ms:.2f}")


if __name__ == "__main__":
    main()
