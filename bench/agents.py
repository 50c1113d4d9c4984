"""AGENTS real bench agents on one ``lea-backend serve``, CLUSTERS clusters deployed at once, vs the demo broker.

The measured side: a real ``python -m backend serve`` on 127.0.0.1 (fresh data directory, default
settings: durability full, heartbeats every 10 s); AGENTS ordinary (non-demo) peers with one
Ethernet device each and CLUSTERS clusters of 4 of them, created over HTTP, and one peer token
each (``POST /api/v1/tokens``). The agents run the real agent code (``lea_peer.connection.Agent``,
its applier and report outbox) with the in-memory data plane (``MemoryDataPlane``: no kernel, the
parameters take no time), as asyncio tasks in PROCESSES agent processes started by this script
(``--worker``), each connected over its own WebSocket to ``/api/v1/peer/connect``.

The baseline, same run, same fleet: a second fresh server started with ``--demo-delay-scale 0``,
the same peers as demo peers (the demo broker simulates them inside the server, instantly), no
agent processes, the same clusters.

Per fleet: wait until every peer is Online; measure the server's CPU while idle for IDLE s; then
store every ClusterDeployment at once (concurrent ``PUT /api/v1/cluster/{id}/deployment``) and
stop the clock when this script's watch stream (``WS /api/v1/watch``, as LEA watches) has seen
every ClusterState Deployed. Figures: that wall time, the server's CPU meanwhile (``/proc/PID/stat``
utime + stime), the reports it received (PeerConfigurationState events on the stream: what the
broker wrote from the agents' report messages, or the demo broker's simulated reports; for the
agents also the report messages the agents sent), CPU per report, and the ratio agents / demo.

    .venv/bin/python bench/agents.py [--quick] [--agents N] [--clusters N] [--processes P] [--idle S]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _common import ROOT, machine, median, parser, temp_dir

PEERS_PER_CLUSTER = 4
DEADLINE = 300.0  # seconds any one phase may take before the run is abandoned
API = "/api/v1"
JSON = {"Content-Type": "application/json"}


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the agent processes -------------------------------------------------------------------------
def worker(spec_path: str) -> None:
    """One agent process: the agents of the spec as asyncio tasks; commands on stdin, one per line:
    ``count`` answers one JSON line {sent, sessions, failed}; ``stop`` (or EOF) stops every agent
    (bye), answers the same and exits."""
    import random

    from lea_peer.connection import Agent, AgentSettings
    from lea_peer.dataplane.memory import MemoryDataPlane
    from lea_peer.reconnect import ReconnectSchedule
    from lea_peer.reports import ReportOutbox
    from resources.agent import CONNECT_PATH, AgentReport

    class CountingOutbox(ReportOutbox):
        """Counts the reports the connection takes out to send."""

        sent = 0

        async def next(self) -> AgentReport:
            report = await super().next()
            self.sent += 1
            return report

    spec = json.loads(Path(spec_path).read_text())
    url = spec["url"].replace("http://", "ws://", 1) + CONNECT_PATH

    async def main() -> None:
        agents = [
            Agent(
                AgentSettings(url=url, peer_id=uuid.UUID(a["peer_id"]), token=a["token"],
                              underlay_address=a["underlay"]),
                MemoryDataPlane(devices=["eth0"]),
                ReconnectSchedule(random.Random(k)),
                CountingOutbox(),
            )
            for k, a in enumerate(spec["agents"])
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(agent.run(stop)) for agent in agents]
        loop = asyncio.get_running_loop()

        def answer() -> None:
            failed = [f"{type(t.exception()).__name__}: {t.exception()}" for t in tasks if t.done() and t.exception()]
            sent = sum(a.outbox.sent for a in agents)  # type: ignore[attr-defined]
            print(json.dumps({"sent": sent, "sessions": sum(a.sessions for a in agents), "failed": failed[:3]}),
                  flush=True)

        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if line.strip() == "count":
                answer()
                continue
            stop.set()
            await asyncio.wait(tasks, timeout=30)
            answer()
            return

    asyncio.run(main())


@dataclass
class AgentProcess:
    process: subprocess.Popen[str]
    stdin: IO[str]
    stdout: IO[str]

    @classmethod
    def start(cls, spec: Path, log: Path) -> AgentProcess:
        with log.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", str(spec)], cwd=ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            )
        assert process.stdin is not None and process.stdout is not None
        return cls(process, process.stdin, process.stdout)

    def ask(self, command: str) -> dict[str, Any]:
        self.stdin.write(command + "\n")
        self.stdin.flush()
        line = self.stdout.readline()
        if not line:
            raise SystemExit(f"an agent process exited with status {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> dict[str, Any] | None:
        try:
            return self.ask("stop") if self.process.poll() is None else None
        except (OSError, ValueError, SystemExit):
            return None
        finally:
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# -- one fleet against one server ----------------------------------------------------------------
@dataclass
class Result:
    name: str
    online_s: float = 0.0  # from starting the agent processes (demo: the last peer stored) to every peer Online
    idle_cpu: float = 0.0  # server CPU seconds per second while idle with the fleet online
    wall_s: float = 0.0  # first deployment PUT -> last Deployed seen on the watch stream
    server_cpu: float = 0.0  # server CPU seconds meanwhile
    reports: float = 0  # PeerConfigurationState events meanwhile
    sent: float = 0  # report messages the agents sent meanwhile (agents only)
    events: float = 0  # every event meanwhile
    parameters: float = 0  # parameters of every peer's configuration
    agents_cpu: float = 0.0  # CPU seconds of the agent processes meanwhile
    problems: list[str] = field(default_factory=list)

    @property
    def per_report_ms(self) -> float:
        return self.server_cpu / max(1, self.reports) * 1000

    @property
    def per_parameter_ms(self) -> float:
        return self.server_cpu / max(1, self.parameters) * 1000


class Watch:
    """The event stream, counting what the measurement needs."""

    def __init__(self, peers: set[str], clusters: set[str]) -> None:
        self.peers, self.clusters = peers, clusters
        self.online: set[str] = set()
        self.deployed: set[str] = set()
        self.failed: dict[str, str] = {}
        self.reports = 0
        self.events = 0
        self.parameters: dict[str, int] = {}  # peer id -> parameters of its latest PeerConfiguration
        self.all_online = asyncio.Event()
        self.all_deployed = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self, url: str, token: str) -> None:
        from websockets.asyncio.client import connect

        ws_url = url.replace("http://", "ws://", 1) + f"{API}/watch"
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None,
                           ping_interval=None) as ws:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "hello":
                    self.ready.set()
                elif message["type"] == "events":
                    self.take(message["events"])

    def take(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.events += 1
            kind, resource = event["kind"], event["resource"]
            if kind == "peer_configuration_state":
                self.reports += 1
            elif kind == "peer_configuration" and resource is not None:
                self.parameters[event["id"]] = len(resource["parameters"])
            elif kind == "peer_connection_state" and resource is not None:
                if resource["state"]["status"] == "online":
                    self.online.add(event["id"])
                else:
                    self.online.discard(event["id"])
            elif kind == "cluster_state" and resource is not None and event["id"] in self.clusters:
                status = resource["state"]["status"]
                if status == "deployed":
                    self.deployed.add(event["id"])
                elif status == "failed":
                    self.failed[event["id"]] = resource["state"].get("reason", "")
        if self.peers <= self.online:
            self.all_online.set()
        if self.clusters <= self.deployed | set(self.failed):
            self.all_deployed.set()


def build(n_peers: int, n_clusters: int, demo: bool) -> tuple[list[Any], list[Any]]:
    from tests.helpers.factories import make_cluster, make_peer

    peers = [make_peer(f"agent-bench-{i:04d}", devices=1, demo=demo) for i in range(n_peers)]
    clusters = [
        make_cluster(f"agent-cluster-{c:03d}", *peers[c * PEERS_PER_CLUSTER:(c + 1) * PEERS_PER_CLUSTER])
        for c in range(n_clusters)
    ]
    return peers, clusters


async def until(event: asyncio.Event, what: str, watcher: asyncio.Task[None], timeout: float = DEADLINE) -> None:
    waiter = asyncio.ensure_future(event.wait())
    done, _ = await asyncio.wait({waiter, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        if watcher in done:
            raise SystemExit(f"the watch stream ended while waiting for {what}: {watcher.exception()!r}")
        raise SystemExit(f"not {what} within {timeout:g} s")


async def measure(
    result: Result, url: str, admin: str, pid: int, peers: list[Any], clusters: list[Any],
    start_fleet: Any, agent_count: Any, agent_pids: Any, idle_s: float,
) -> None:
    import httpx

    watch = Watch({str(p.id) for p in peers}, {str(c.id) for c in clusters})
    watcher = asyncio.create_task(watch.run(url, admin))
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=60) as http:
        try:
            await until(watch.ready, "the watch stream's hello", watcher, 30)
            started = await start_fleet(http)
            await until(watch.all_online, "every peer online", watcher)
            result.online_s = time.monotonic() - started

            cpu = process_cpu(pid)
            await asyncio.sleep(idle_s)
            result.idle_cpu = (process_cpu(pid) - cpu) / idle_s

            reports0, events0, (sent0, _) = watch.reports, watch.events, agent_count()
            agents_cpu0 = sum(process_cpu(p) for p in agent_pids())
            cpu0, t0 = process_cpu(pid), time.monotonic()
            responses = await asyncio.gather(*(http.put(f"{API}/cluster/{c.id}/deployment") for c in clusters))
            for response in responses:
                response.raise_for_status()
            await until(watch.all_deployed, "every cluster deployed", watcher)
            result.wall_s = time.monotonic() - t0
            result.server_cpu = process_cpu(pid) - cpu0
            result.agents_cpu = sum(process_cpu(p) for p in agent_pids()) - agents_cpu0
            result.reports, result.events = watch.reports - reports0, watch.events - events0
            sent1, sessions = agent_count()
            result.sent = sent1 - sent0
            if sessions > len(peers):
                result.problems.append(f"{sessions - len(peers)} agent reconnects")
            result.parameters = sum(watch.parameters.values())
            if watch.failed:
                result.problems.append(f"{len(watch.failed)} clusters failed, e.g. {next(iter(watch.failed.values()))}")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher


async def store_fleet(http: Any, peers: list[Any], clusters: list[Any]) -> None:
    for resource, kind in [*((p, "peer") for p in peers), *((c, "cluster") for c in clusters)]:
        response = await http.put(f"{API}/{kind}/{resource.id}", content=resource.model_dump_json(),
                                  headers={**JSON, "If-None-Match": "*"})
        response.raise_for_status()


def run_fleet(name: str, tmp: Path, n_peers: int, n_clusters: int, processes: int, idle_s: float) -> Result:
    import httpx

    from tests.helpers.server import create_token, start_server

    demo = name == "demo"
    result = Result(name)
    data_dir = tmp / name / "data"
    admin = create_token(data_dir, "admin", "bench-admin")
    peers, clusters = build(n_peers, n_clusters, demo)
    server = start_server(data_dir, extra_args=["--demo-delay-scale", "0"] if demo else [])
    workers: list[AgentProcess] = []
    try:
        if demo:
            async def start_fleet(http: Any) -> float:
                await store_fleet(http, peers, clusters)  # the demo broker brings them online
                return time.monotonic()

            def agent_count() -> tuple[int, int]:
                return 0, 0
        else:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=60) as http:
                tokens = []
                for i, peer in enumerate(peers):
                    response = http.post(f"{API}/tokens", params={"name": f"bench-{i:04d}", "role": "peer",
                                                                  "peer_id": str(peer.id)})
                    response.raise_for_status()
                    tokens.append(response.json()["token"])
            chunks = [range(k, n_peers, processes) for k in range(processes)]
            specs = []
            for k, chunk in enumerate(chunks):
                spec = tmp / name / f"agents-{k}.json"
                spec.write_text(json.dumps({"url": server.url, "agents": [
                    {"peer_id": str(peers[i].id), "token": tokens[i], "underlay": f"198.18.{i // 250}.{i % 250 + 1}"}
                    for i in chunk
                ]}))
                specs.append(spec)

            async def start_fleet(http: Any) -> float:
                await store_fleet(http, peers, clusters)  # before the agents: a hello needs its peer
                started = time.monotonic()
                workers.extend(AgentProcess.start(spec, spec.with_suffix(".log")) for spec in specs)
                return started

            def agent_count() -> tuple[int, int]:
                """(reports sent, sessions) of every agent so far."""
                answers = [w.ask("count") for w in workers]
                failed = [f for a in answers for f in a["failed"]]
                if failed:
                    raise SystemExit(f"agents stopped: {failed[0]}")
                return sum(a["sent"] for a in answers), sum(a["sessions"] for a in answers)

        asyncio.run(measure(result, server.url, admin, server.process.pid, peers, clusters, start_fleet,
                            agent_count, lambda: [w.process.pid for w in workers], idle_s))
    except BaseException:
        for spec in sorted((tmp / name).glob("agents-*.log")):  # what the agents said, e.g. why they stopped
            lines = spec.read_text(errors="replace").splitlines()[-5:]
            print(f"--- {spec.name}:", *lines, sep="\n", file=sys.stderr)
        raise
    finally:
        for w in workers:
            w.stop()
        server.stop(check=False)
    return result


def merged(results: list[Result]) -> Result:
    """The median of every figure over the rounds (a single round: itself)."""
    if len(results) == 1:
        return results[0]
    out = Result(results[0].name, problems=[p for r in results for p in r.problems])
    for name in ("online_s", "idle_cpu", "wall_s", "server_cpu", "reports", "sent", "events", "parameters",
                 "agents_cpu"):
        setattr(out, name, median([getattr(r, name) for r in results]))
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=None, help="peers, each with its own agent (default 200, quick 40)")
    p.add_argument("--clusters", type=int, default=None,
                   help="clusters of 4 peers deployed at once (default 50, quick 10)")
    p.add_argument("--processes", type=int, default=4, help="agent processes the agents are spread over (default 4)")
    p.add_argument("--idle", type=float, default=None,
                   help="seconds the idle server CPU is measured (default 3, quick 1)")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds of both fleets, in alternating order; medians are printed (default 1)")
    p.add_argument("--worker", metavar="SPEC", help=argparse_suppress())
    args = p.parse_args()
    if args.worker:
        worker(args.worker)
        return
    n_agents = args.agents or (40 if args.quick else 200)
    n_clusters = args.clusters or (10 if args.quick else 50)
    idle_s = args.idle or (1.0 if args.quick else 3.0)
    if n_clusters * PEERS_PER_CLUSTER > n_agents:
        raise SystemExit(f"{n_clusters} clusters of {PEERS_PER_CLUSTER} need at least {n_clusters * 4} agents")

    runs: dict[str, list[Result]] = {"agents": [], "demo": []}
    with temp_dir(args.tmp_dir) as tmp:
        tmp_path = Path(tmp)
        for k in range(args.rounds):
            for name in ("agents", "demo") if k % 2 == 0 else ("demo", "agents"):  # load drifts: alternate
                runs[name].append(run_fleet(name, tmp_path / f"round-{k}", n_agents, n_clusters, args.processes,
                                            idle_s))
            a, d = runs["agents"][-1], runs["demo"][-1]
            print(f"round {k + 1}: agents {a.wall_s:.2f} s / {a.server_cpu:.2f} s CPU / {a.reports} reports, "
                  f"demo {d.wall_s:.2f} s / {d.server_cpu:.2f} s CPU / {d.reports} reports; load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
        info = machine(tmp_path)
    agents, demo = merged(runs["agents"]), merged(runs["demo"])

    print(f"machine: {info}")
    print(f"{n_agents} peers, {n_clusters} clusters of {PEERS_PER_CLUSTER} (one Ethernet device each) deployed at once "
          f"on a fresh `lea-backend serve` (durability full); agents: real lea_peer agents with the in-memory data "
          f"plane in {args.processes} processes; demo: the demo broker, delay scale 0"
          + (f"; medians of {args.rounds} rounds" if args.rounds > 1 else ""))
    rows = [
        ("idle server CPU (% of a core)", agents.idle_cpu * 100, demo.idle_cpu * 100, "{:.1f}"),
        ("time to all Deployed (s)", agents.wall_s, demo.wall_s, "{:.2f}"),
        ("server CPU (s)", agents.server_cpu, demo.server_cpu, "{:.2f}"),
        ("reports (PeerConfigurationState events)", agents.reports, demo.reports, "{:,.0f}"),
        ("server CPU per report (ms)", agents.per_report_ms, demo.per_report_ms, "{:.2f}"),
        ("parameters deployed", agents.parameters, demo.parameters, "{:,.0f}"),
        ("server CPU per parameter (ms)", agents.per_parameter_ms, demo.per_parameter_ms, "{:.2f}"),
        ("events (all kinds)", agents.events, demo.events, "{:,.0f}"),
    ]
    print(f"{'':42} {'agents':>10} {'demo':>10} {'agents/demo':>12}")
    for label, mine, base, fmt in rows:
        ratio = f"{mine / base:.2f}x" if base else "-"
        print(f"{label:42} {fmt.format(mine):>10} {fmt.format(base):>10} {ratio:>12}")
    print(f"agents: every agent Online {agents.online_s:.2f} s after its processes were started; "
          f"{agents.sent:,.0f} report messages sent ({agents.sent / n_agents:.1f} per agent), "
          f"server CPU {agents.server_cpu / max(1, agents.sent) * 1000:.2f} ms per message; "
          f"agent processes' CPU {agents.agents_cpu:.2f} s")
    problems = agents.problems + demo.problems
    if problems:
        print("PROBLEMS: " + "; ".join(problems))
    print(f"ratio agents/demo: time to all Deployed {agents.wall_s / demo.wall_s:.2f}x, "
          f"server CPU {agents.server_cpu / demo.server_cpu:.2f}x, "
          f"server CPU per report {agents.per_report_ms / demo.per_report_ms:.2f}x, "
          f"per parameter {agents.per_parameter_ms / demo.per_parameter_ms:.2f}x")


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
