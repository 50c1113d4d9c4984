"""File permissions in tests: making a folder read-only works for root too (a container's user)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def bound_by_permissions() -> list[str]:
    """A command prefix under which file permissions apply: root ignores them unless it drops
    CAP_DAC_OVERRIDE (setpriv), as in a container."""
    if sys.platform == "win32":
        pytest.skip("chmod does not make a folder read-only on Windows")
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod cannot make a folder read-only")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def writable(path: Path, prefix: list[str]) -> bool:
    probe = "import os, sys; sys.exit(0 if os.access(sys.argv[1], os.W_OK) else 1)"
    return subprocess.run([*prefix, sys.executable, "-c", probe, str(path)], check=False).returncode == 0
