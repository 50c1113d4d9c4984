"""The embedded backend's child on SQLite never loads psycopg (libpq): ~0.2 s of its start-up, which
LEA's first paint waits for. A PostgreSQL store imports it when it is used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def loaded_after(code: str) -> set[str]:
    listing = "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool')))"
    probe = f"{code}\nimport sys\n{listing}"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_child_s_start_up_modules_do_not_load_psycopg() -> None:
    assert loaded_after("import backend.cli, backend.server.serve, backend.backend, backend.stores") == set()


def test_a_postgresql_target_loads_it_when_used() -> None:
    loaded = loaded_after(
        "from backend.storage.pg_target import PostgresTarget\n"
        "PostgresTarget.parse('postgresql://lea@localhost:5432/lea').conninfo()"
    )
    assert "psycopg" in loaded
