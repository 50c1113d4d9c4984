"""``systemd-analyze verify`` and ``security`` on a unit file of packaging/, its program replaced by a stub."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

ANALYZE = shutil.which("systemd-analyze")


def stubbed(unit_text: str, program: str, tmp_path: Path) -> Path:
    """The unit in ``tmp_path`` with ExecStart's ``program`` (not installed here) replaced by a stub."""
    stub = tmp_path / Path(program).name
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    unit = tmp_path / "unit.service"
    unit.write_text(unit_text.replace(program, str(stub)))
    return unit


def verify(unit_text: str, program: str, tmp_path: Path) -> list[str]:
    """What ``systemd-analyze verify`` says about the unit (empty: nothing)."""
    result = subprocess.run(
        [ANALYZE or "systemd-analyze", "verify", "--man=no", str(stubbed(unit_text, program, tmp_path))],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    said = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return [*said, f"exit status {result.returncode}"] if result.returncode else said


def exposure(unit_text: str, program: str, tmp_path: Path) -> float:
    """``systemd-analyze security --offline=yes``'s overall exposure level (0 = best, 10 = worst)."""
    result = subprocess.run(
        [ANALYZE or "systemd-analyze", "security", "--offline=yes", "--no-pager",
         str(stubbed(unit_text, program, tmp_path))],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert match is not None, result.stdout + result.stderr
    return float(match.group(1))
