"""The ``lea`` command."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path

from resources.app import APP_NAME, default_data_dir


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
        help="use the shared server at URL instead of the embedded backend (token from $LEA_TOKEN or the keyring)",
    )
    parser.add_argument("--ca-file", help="CA certificate to trust for the server's TLS certificate")
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="start on a temporary demo data directory, deploy one demo cluster, exit 0 when it is deployed",
    )
    parser.add_argument("--screenshot", type=Path, help="with --smoke-test: save a PNG of the window here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lea_app.app import Options, run

    if args.smoke_test:
        from lea_app.app import run_coroutine
        from lea_app.smoke import smoke_test

        return run_coroutine(smoke_test(args.screenshot))
    data_dir = args.data_dir or default_data_dir(args.demo)
    return run(
        Options(
            data_dir=data_dir,
            demo=args.demo,
            connect=args.connect,
            token=os.environ.get("LEA_TOKEN"),
            ca_file=args.ca_file,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
