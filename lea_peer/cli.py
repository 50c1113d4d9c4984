"""``lea-peer``: run the agent, probe the kernel, clean up what the agent made, print the version."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import ipaddress
import logging
import signal
import socket
import ssl
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import lea_peer
from lea_peer.applier import RECHECK_S
from lea_peer.can.base import CanPlane
from lea_peer.can.ecu_sim import EcuAddress, SimulationError, parse_can_sim
from lea_peer.can.select import MODES, make_can_plane
from lea_peer.connection import Agent, AgentSettings, DataPlaneUnavailable, FinalError
from lea_peer.dataplane.base import DataPlane
from resources.agent import CONNECT_PATH
from resources.cli_config import ConfigError, subcommand_parser, with_config

log = logging.getLogger("lea_peer")

#: Exit status when retrying cannot help (systemd: RestartPreventExitStatus=2).
EXIT_FINAL = 2
_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_DEFAULT_PORTS = {"ws": 80, "wss": 443}
_NO_PEER = UUID(int=0)  # probe and cleanup act for no peer in particular


class UsageError(Exception):
    """Bad input on the command line: one line naming the problem, exit status 2."""


class StartupError(Exception):
    """The bench is not ready yet (e.g. no route to the backend at boot): exit 1, systemd retries."""


def agent_endpoint(backend: str) -> str:
    """The agent endpoint URL of ``backend`` (``https://host:8421`` -> ``wss://host:8421/api/v1/peer/connect``)."""
    parts = urlsplit(backend)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise UsageError(f"--backend {backend!r}: the URL must start with https://, http://, wss:// or ws://")
    if not parts.hostname:
        raise UsageError(f"--backend {backend!r}: the URL names no host")
    try:
        parts.port  # noqa: B018  # urlsplit checks the port only when asked
    except ValueError:
        raise UsageError(f"--backend {backend!r}: the port is not a number from 0 to 65535") from None
    path = parts.path.rstrip("/")
    if not path.endswith(CONNECT_PATH):
        path += CONNECT_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UsageError(f"--token-file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--token-file {path}: cannot read it ({exc})") from None
    if not token:
        raise UsageError(f"--token-file {path}: the file is empty (it must hold the bench token LEA created)")
    if any(c.isspace() for c in token):
        raise UsageError(f"--token-file {path}: the file must hold one token on one line")
    return token


def parse_peer_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise UsageError(f"--peer-id {text!r}: not a UUID (copy it from the Set up bench dialog)") from None


def default_underlay_address(url: str) -> str:
    """The source address the kernel would use to reach the backend's host (a UDP ``connect``
    sends nothing; it only asks the routing table)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError as exc:
        raise StartupError(
            f"cannot tell which address this bench reaches {host} from ({exc}); pass --underlay-address"
        ) from None


def ssl_context(url: str, ca_file: Path | None) -> ssl.SSLContext | None:
    if not url.startswith("wss:"):
        if ca_file is not None:
            raise UsageError("--ca-file needs an https:// (or wss://) backend URL")
        return None
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"--ca-file {ca_file}: not a readable PEM certificate file ({exc})") from None


def parse_simulations(values: list[str] | None, can: str) -> list[EcuAddress]:
    """The ``--can-sim`` values, checked: each DEVICE and each endpoint at most once."""
    simulations: list[EcuAddress] = []
    for text in values or ():
        try:
            address = parse_can_sim(text)
        except SimulationError as exc:
            raise UsageError(f"--can-sim {exc}") from None
        for other in simulations:
            if other.device == address.device:
                raise UsageError(f"--can-sim: device {address.device} is given twice")
            if (other.host, other.port) == (address.host, address.port):
                raise UsageError(f"--can-sim: {address.text} is given for both {other.device} and {address.device}")
        simulations.append(address)
    if simulations and can == "none":
        raise UsageError("--can-sim needs CAN: drop --can none (simulated ECU endpoints use userspace CAN)")
    return simulations


async def choose_can_plane(
    kind: str, mode: str, netns: str | None, simulations: list[EcuAddress], underlay_address: str = ""
) -> CanPlane | None:
    """The CAN plane for ``kind``; None: the data plane's default (the memory plane's simulation)."""
    if kind == "memory" and mode == "auto" and not simulations:
        return None
    if kind == "memory" and mode != "none":
        from lea_peer.can.userspace import UserspaceCanPlane

        return UserspaceCanPlane(None, simulations, underlay_address)
    return await make_can_plane(mode, netns, simulations, underlay_address)


def make_data_plane(
    kind: str, netns: str | None, peer_id: UUID = _NO_PEER, underlay_address: str = "", can: CanPlane | None = None
) -> DataPlane:
    if kind == "memory":
        from lea_peer.dataplane.memory import MemoryDataPlane

        if netns is not None:
            raise UsageError("--netns has no meaning with --data-plane memory (a simulation)")
        log.warning("using the SIMULATED in-memory data plane: nothing is configured on this bench")
        return MemoryDataPlane(can=can)
    try:
        # Lazily: pyroute2 is loaded only by the real data plane (probe/cleanup/run with netlink).
        netlink = importlib.import_module("lea_peer.dataplane.netlink")
    except ImportError as exc:
        raise UsageError(f"the netlink data plane is not available in this build ({exc})") from None
    factory = getattr(netlink, "NetlinkDataPlane", None)
    if factory is None:
        raise UsageError("the netlink data plane is not available in this build (no NetlinkDataPlane)")
    extra = {} if can is None else {"can": can}
    plane: DataPlane = factory(peer_id=peer_id, netns=netns, underlay_address=underlay_address, **extra)
    return plane


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lea-peer", description="The LEA test-bench agent: applies the backend's configuration to this bench."
    )
    parser.add_argument("--version", action="version", version=f"lea-peer {lea_peer.__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug lines too")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="connect to the backend and keep this bench configured")
    run.add_argument("--config", type=Path, metavar="FILE",
                     help="read these options from a TOML file (the package's /etc/lea/peer.toml: backend, peer-id,"
                          " ...); the command line's options win")
    run.add_argument("--backend", required=True, metavar="URL",
                     help="the backend, e.g. https://lea.example:8421 (the agent endpoint path is added); an active"
                          " server and its standbys: URL,URL,... (tried in turn)")
    run.add_argument("--peer-id", required=True, metavar="UUID", help="this bench's peer id in LEA")
    run.add_argument("--token-file", required=True, type=Path, metavar="FILE",
                     help="file holding the bench token (systemd: $CREDENTIALS_DIRECTORY/token)")
    run.add_argument("--underlay-address", metavar="IP",
                     help="the address the other benches reach this one at (default: the source address"
                          " the kernel uses to reach the backend host)")
    run.add_argument("--ca-file", type=Path, metavar="FILE", help="PEM file of the CA that signed the backend's"
                     " certificate (https only; default: the system's CAs)")
    run.add_argument("--netns", metavar="NAME", help="configure this network namespace instead of the agent's own")
    run.add_argument("--recheck-s", type=float, default=RECHECK_S, metavar="N",
                     help=f"re-check every parameter every N seconds and repair drift (default {RECHECK_S:.0f})")
    run.add_argument("--data-plane", choices=("netlink", "memory"), default="netlink",
                     help="netlink (default) configures the bench; memory is a simulation for tests and benchmarks")
    run.add_argument("--can", choices=MODES, default="auto",
                     help="auto (default): kernel CAN where the kernel has it, else userspace (an in-process hub);"
                          " none refuses every CAN parameter")
    run.add_argument("--can-sim", action="append", metavar="DEVICE=udp:HOST:PORT",
                     help="a SIMULATED ECU endpoint: CAN device DEVICE is the UDP address HOST:PORT (in --netns);"
                          " cannelloni datagrams received there are the ECU's frames (repeatable; userspace CAN)")

    probe = commands.add_parser("probe", help="print this kernel's capabilities as JSON")
    probe.add_argument("--netns", metavar="NAME")
    probe.add_argument("--data-plane", choices=("netlink", "memory"), default="netlink", help=argparse.SUPPRESS)

    cleanup = commands.add_parser("cleanup", help="remove every link the agent made (offline; no backend needed)")
    cleanup.add_argument("--netns", metavar="NAME")
    cleanup.add_argument("--data-plane", choices=("netlink", "memory"), default="netlink", help=argparse.SUPPRESS)
    return parser


def _settings(args: argparse.Namespace) -> AgentSettings:
    # URL[,URL...]: an active server and its standbys (docs/server.md); the agent tries them in turn.
    urls = [agent_endpoint(item.strip()) for item in args.backend.split(",") if item.strip()]
    if not urls:
        raise UsageError(f"--backend {args.backend!r}: no server URL")
    url = urls[0]
    peer_id = parse_peer_id(args.peer_id)
    token = read_token(args.token_file)
    if args.recheck_s <= 0:
        raise UsageError(f"--recheck-s {args.recheck_s}: must be more than 0")
    if args.underlay_address is not None:
        try:
            underlay = str(ipaddress.ip_address(args.underlay_address))
        except ValueError:
            raise UsageError(f"--underlay-address {args.underlay_address!r}: not an IP address") from None
    else:
        underlay = default_underlay_address(url)
    return AgentSettings(url=url, peer_id=peer_id, token=token, underlay_address=underlay,
                         ssl=ssl_context(url, args.ca_file), recheck_s=args.recheck_s,
                         fallback_urls=tuple(urls[1:]))


async def _run(settings: AgentSettings, args: argparse.Namespace, simulations: list[EcuAddress]) -> None:
    can = await choose_can_plane(args.data_plane, args.can, args.netns, simulations, settings.underlay_address)
    data_plane = make_data_plane(args.data_plane, args.netns, settings.peer_id, settings.underlay_address, can)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("lea-peer %s for peer %s, underlay address %s", lea_peer.__version__, settings.peer_id,
             settings.underlay_address)
    await Agent(settings, data_plane).run(stop)
    log.info("stopped")


async def _probe(kind: str, netns: str | None) -> str:
    can = await choose_can_plane(kind, "auto", netns, [])
    data_plane = make_data_plane(kind, netns, _NO_PEER, "", can)
    try:
        return (await data_plane.probe()).model_dump_json()
    except Exception as exc:
        raise DataPlaneUnavailable(f"probing the kernel failed: {exc}") from exc
    finally:
        await data_plane.close()


async def _cleanup(data_plane: DataPlane) -> list[str]:
    try:
        return await data_plane.sweep(keep=())
    except Exception as exc:
        raise DataPlaneUnavailable(f"removing the agent's links failed: {exc}") from exc
    finally:
        await data_plane.close()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        argv = with_config(sys.argv[1:] if argv is None else argv, "run", subcommand_parser(parser, "run"))
    except ConfigError as exc:
        print(f"lea-peer: {exc}", file=sys.stderr)
        return EXIT_FINAL
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "run":
            settings = _settings(args)
            simulations = parse_simulations(args.can_sim, args.can)
            asyncio.run(_run(settings, args, simulations))
        elif args.command == "probe":
            print(asyncio.run(_probe(args.data_plane, args.netns)))
        else:
            removed = asyncio.run(_cleanup(make_data_plane(args.data_plane, args.netns)))
            print(f"removed {len(removed)} link(s)" + (f": {', '.join(removed)}" if removed else ""))
    except (UsageError, FinalError) as exc:
        print(f"lea-peer: {exc}", file=sys.stderr)
        return EXIT_FINAL
    except (StartupError, DataPlaneUnavailable) as exc:
        print(f"lea-peer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the loop took over the signal
        return 130
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
