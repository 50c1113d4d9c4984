"""The ``lea`` command."""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lea", description="LEA desktop")
    parser.add_argument("--version", action="version", version=f"lea {version('lea-desktop')}")
    parser.parse_args(argv)
    print(
        "lea: the desktop window is not built yet (tracked as the LEA app issue); "
        "the backend is usable through `lea-backend`.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
