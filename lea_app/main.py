"""The ``lea`` command."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from resources.app import APP_NAME, default_data_dir

if TYPE_CHECKING:
    from lea_app.connection.process import BackendProcess


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> argparse.ArgumentParser:
    """The ``lea`` command line (also the source of the packages' man page, packaging/make_manpage.py)."""
    parser = argparse.ArgumentParser(
        prog="lea", description="LEA desktop: manage test benches, group devices into clusters, deploy them."
    )
    parser.add_argument("--version", action="version", version=f"lea {version(APP_NAME)}")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: the platform's user-data folder)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="try LEA with a simulated fleet of demo benches, in a data directory of its own",
    )
    parser.add_argument(
        "--connect",
        metavar="URL",
        help="use the shared server at URL instead of the embedded backend (token from $LEA_TOKEN or the keyring);"
        " URL,URL,... lists an active server and its standbys, tried in turn",
    )
    parser.add_argument("--ca-file", help="CA certificate to trust for the server's TLS certificate")
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="start on a temporary demo data directory, deploy one demo cluster, exit 0 when it is deployed",
    )
    parser.add_argument("--screenshot", type=Path, help="with --smoke-test: save a PNG of the window here")
    parser.add_argument(
        "--agents-listen", type=host_port, metavar="HOST:PORT",
        help="let bench agents (lea-peer) connect to the embedded backend on HOST:PORT (off by default)",
    )
    parser.add_argument("--agents-tls-cert", type=Path, metavar="FILE", help="TLS certificate for --agents-listen")
    parser.add_argument("--agents-tls-key", type=Path, metavar="FILE", help="TLS private key for --agents-listen")
    return parser


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for an IPv6 address) of --agents-listen."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 0.0.0.0:8422), not {text!r}")
    return host.strip("[]"), int(port)


def start_backend(args: argparse.Namespace, data_dir: Path) -> BackendProcess | None:
    """The embedded backend's child process, started before LEA imports Qt and its window: the
    child restores (a second or more with 10,000 resources) while LEA loads."""
    from lea_app.connection.process import BackendProcess, ChildOptions

    options = ChildOptions(
        data_dir, demo=args.demo, agents_listen=args.agents_listen, agents_tls_cert=args.agents_tls_cert,
        agents_tls_key=args.agents_tls_key,
    )
    try:
        return BackendProcess.spawn(options)
    except Exception:
        return None  # started again by the app, which shows the error in a dialog


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = args.data_dir or default_data_dir(args.demo)
    child = start_backend(args, data_dir) if args.connect is None and not args.smoke_test else None
    from lea_app.app import Options, run

    if args.smoke_test:
        from lea_app.app import run_coroutine
        from lea_app.smoke import smoke_test

        return run_coroutine(smoke_test(args.screenshot))
    return run(
        Options(
            data_dir=data_dir,
            demo=args.demo,
            connect=args.connect,
            token=os.environ.get("LEA_TOKEN"),
            ca_file=args.ca_file,
            agents_listen=args.agents_listen,
            agents_tls_cert=args.agents_tls_cert,
            agents_tls_key=args.agents_tls_key,
            child_process=child,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
