"""A real full disk for storage tests: a small tmpfs, filled with a filler file and freed again.

``small_tmpfs`` mounts it (root only; the test is skipped, with the reason printed, where ``mount``
is refused) and always unmounts it, also when the test fails. ``fill`` writes a filler file until
the file system says ENOSPC, so SQLite's next write fails with SQLITE_FULL; ``free`` deletes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = "filler"


@contextmanager
def small_tmpfs(directory: Path, size_kib: int = 4096) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` KiB on ``directory`` for the duration of the block."""
    directory.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        _skip("no mount command here")
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(directory)],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except OSError as exc:
        _skip(f"cannot run mount: {exc}")
    if result.returncode != 0:
        _skip(f"mount refused a tmpfs ({result.stderr.strip() or result.returncode}); a full disk needs root")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], capture_output=True, timeout=30, check=False).returncode:
            # Still busy (a process that outlived its test): detach it, never leave a mount behind.
            subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=30, check=False)


def _skip(reason: str) -> None:
    print(f"skipped: {reason}")
    pytest.skip(reason)


def fill(directory: Path) -> Path:
    """Write a filler file in ``directory`` until its file system is full; returns the file."""
    filler = directory / FILLER
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            try:
                while True:
                    os.write(fd, block)
            except OSError:
                continue  # full at this size: top up with smaller writes
    finally:
        os.close(fd)
    assert shutil.disk_usage(directory).free < 4096, shutil.disk_usage(directory)
    return filler


def free(filler: Path) -> None:
    """Give the space back."""
    filler.unlink()
