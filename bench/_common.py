"""Shared helpers of the hand-run benchmarks in bench/ (not a test, not part of the package)."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).resolve().parent / "out"

if str(ROOT) not in sys.path:  # tests.helpers.factories lives in the repository, not the package
    sys.path.insert(0, str(ROOT))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smaller, faster run")
    p.add_argument(
        "--tmp-dir",
        default=None,
        help="parent of the temporary directory (default: the system temp dir); put it on the disk to test",
    )
    return p


def temp_dir(parent: str | None) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="lea-bench-", dir=parent)


def disk_of(path: Path) -> str:
    """'<device> <fstype>' of the file system holding ``path`` (best effort, Linux df)."""
    try:
        out = subprocess.run(
            ["df", "-T", str(path)], capture_output=True, text=True, check=True, timeout=10
        ).stdout.splitlines()
        fields = out[-1].split()
        return f"{fields[0]} {fields[1]}"
    except Exception:
        return "unknown"


def machine(path: Path) -> str:
    return (
        f"nproc={os.cpu_count()} load={os.getloadavg()[0]:.2f} disk={disk_of(path)} "
        f"python={platform.python_version()} sqlite={sqlite3.sqlite_version}"
    )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (p in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100.0 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"
