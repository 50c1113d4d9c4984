"""A refused start-up or a refused command changes no file: real ``lea-backend`` processes on real files.

The data directories here are "crashed" ones: a backend was killed with writes still in the
write-ahead log and events after its last checkpoint, so that any open-and-close would show (the WAL
merged into ``lea.db``, a shutdown checkpoint written, a revision block reserved). Every file is
compared by sha256 before and after, except SQLite's wal-index ``lea.db-shm`` (a cache any reader
rebuilds from the WAL: compared by name only) and ``lea.lock`` (the lock itself: a start-up that got
as far as taking it creates it and writes its pid there); docs/decisions.md says why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from backend import actions
from backend.backend import Backend
from resources import ResourceKind
from tests.helpers.factories import make_peer
from tests.helpers.permissions import bound_by_permissions, writable
from tests.helpers.server import REPO, TlsFiles, create_token, lea_backend, make_tls, running_server

ERROR_PREFIX = "lea-backend: error: "
#: SQLite's wal-index: a cache any reader may rebuild from the WAL; compared by name only.
INDEX = "lea.db-shm"
#: The lock itself: a start-up that got as far as taking it creates it and writes its pid there.
LOCK = "lea.lock"

# Writes peers through a real backend (checkpoint every 5 events), optionally a token, then dies
# without closing anything: 12 events, checkpoints at 5 and 10, every page still in the WAL.
_CRASH = textwrap.dedent(
    """
    import os, sys
    from backend import actions
    from backend.backend import Backend
    from backend.tokens import Role, TokenStore
    from tests.helpers.factories import make_peer
    backend = Backend(sys.argv[1], checkpoint_interval=5).start()
    if sys.argv[2] == "token":
        TokenStore(backend.data_dir.db_path).create("root", Role.ADMIN)
    for i in range(12):
        actions.store_resources(backend.manager, [make_peer(f"bench-{i:02}")], "seed")
    backend.manager.close(checkpoint=False)  # the sequencer is idle: no checkpoint half written
    os._exit(0)
    """
)

# Runs one SQL statement on a database and dies without closing: the change stays in the WAL.
_RAW_CRASH = (
    "import os, sqlite3, sys; sqlite3.connect(sys.argv[1], isolation_level=None).execute(sys.argv[2]); os._exit(0)"
)


def _python(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=REPO, check=True, timeout=60)


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (the index by name only, the lock not at all)."""
    return {
        str(path.relative_to(root)): "" if path.name == INDEX else hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != LOCK
    }


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two crashed data directories, one with an admin token, one without (made once, copied per test)."""
    base = tmp_path_factory.mktemp("crashed")
    made = {}
    for name in ("token", "none"):
        _python("-c", _CRASH, str(base / name), name)
        made[name] = base / name
        files = {p.name for p in made[name].iterdir()}
        assert {"lea.db", "lea.db-wal", "lea.db-shm"} <= files, files
        assert (made[name] / "lea.db-wal").stat().st_size > 0
    return made


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _crashed_with(source: Path, target: Path, sql: str) -> Path:
    _copy(source, target)
    _python("-c", _RAW_CRASH, str(target / "lea.db"), sql)
    return target


def _corrupt_an_event_page(data_dir: Path) -> None:
    """Overwrite the middle of an events-table leaf page (the cells, not the page header)."""
    conn = sqlite3.connect(f"{(data_dir / 'lea.db').as_uri()}?immutable=1", uri=True)  # creates no -wal/-shm
    try:
        pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf'")]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    assert len(pages) >= 3, pages
    page = pages[len(pages) // 2]
    with open(data_dir / "lea.db", "r+b") as handle:
        handle.seek((page - 1) * page_size + page_size // 2)
        handle.write(b"\x00garbage!" * 20)
    for suffix in ("-wal", "-shm"):
        assert not (data_dir / f"lea.db{suffix}").exists()


def _encrypted_key(tls: TlsFiles, target: Path) -> Path:
    key = serialization.load_pem_private_key(tls.key_path.read_bytes(), None)
    target.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"a pass phrase"),
        )
    )
    return target


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), result.stderr
    assert "serving" not in result.stdout
    return lines[0]


# -- every refused start-up --------------------------------------------------------------------------
def test_a_refused_start_up_changes_no_file(crashed: dict[str, Path], tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    encrypted = _encrypted_key(tls, tmp_path / "tls" / "encrypted.key")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    busy_port = str(busy.getsockname()[1])
    cert = ["--tls-cert", str(tls.cert_path), "--tls-key", str(tls.key_path)]

    def case(name: str, source: str) -> Path:
        return _copy(crashed[source], tmp_path / name)

    def edited(name: str, sql: str) -> Path:
        return _crashed_with(crashed["token"], tmp_path / name, sql)

    def with_file(name: str, file: str, content: bytes) -> Path:
        target = case(name, "token")
        (target / file).write_bytes(content)
        return target

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "lea.db").write_bytes(b"")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    conn = sqlite3.connect(foreign / "lea.db")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.commit()
    conn.close()
    clean = case("clean-no-tokens", "none")
    Backend(clean).close()  # merges the WAL (a shutdown checkpoint is written): a cleanly closed directory
    assert {p.name for p in clean.iterdir()} == {"lea.db", "lea.lock", "logs"}
    last_event = "(SELECT max(revision) FROM events)"
    cases: list[tuple[Path, list[str], str]] = [
        (case("no-tokens", "none"), ["--host", "0.0.0.0"], "without tokens"),
        (case("no-tls", "token"), ["--host", "0.0.0.0"], "without TLS"),
        (clean, ["--host", "0.0.0.0"], "without tokens"),  # counted without creating a -wal or -shm
        (case("garbage-tls", "token"), ["--tls-cert", str(garbage), "--tls-key", str(tls.key_path)],
         "cannot use the TLS certificate"),
        (case("encrypted-key", "token"), ["--tls-cert", str(tls.cert_path), "--tls-key", str(encrypted)],
         "pass phrase"),
        (case("demo-garbage-tls", "token"), ["--demo", "--tls-cert", str(garbage), "--tls-key", str(garbage)],
         "cannot use the TLS certificate"),
        (case("no-auth", "none"), ["--host", "0.0.0.0", "--insecure-no-auth"], "--insecure-no-auth is accepted only"),
        (case("no-auth-http", "token"), ["--host", "0.0.0.0", "--insecure-no-auth", "--insecure-http"],
         "--insecure-no-auth"),
        (case("half-tls", "token"), ["--tls-cert", str(tls.cert_path)], "--tls-cert and --tls-key go together"),
        (case("no-tls-files", "token"), ["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(tls.key_path)],
         "No such file"),
        (case("port-in-use", "token"), ["--port", busy_port, *cert], f"cannot listen on 127.0.0.1:{busy_port}"),
        (case("bad-host", "token"), ["--host", "no such host", "--insecure-http"], "cannot listen on no such host"),
        (case("port-out-of-range", "token"), ["--port", "70000"], "65535"),
        (edited("schema-too-new", "UPDATE meta SET value = '99' WHERE key = 'schema_version'"), [],
         "newer LEA"),
        (edited("schema-not-a-number", "UPDATE meta SET value = 'two' WHERE key = 'schema_version'"), [],
         "schema_version"),
        (edited("reserved-not-a-number", "UPDATE meta SET value = 'x' WHERE key = 'revision_reserved'"), [],
         "revision_reserved"),
        (edited("unknown-kind", f"UPDATE events SET kind = 'gateway' WHERE revision = {last_event}"), [],
         "unknown kind 'gateway'"),
        (edited("bad-payload", f"UPDATE events SET payload = '{{\"kind\": \"peer\"}}' WHERE revision = {last_event}"),
         [], "cannot be read"),
        (with_file("bad-settings", "lea.toml", b"checkpoint_interval = 0\n"), [], "lea.toml"),
        (empty, [], "empty"),
        (foreign, [], "another program"),
        (tmp_path / "mistyped", ["--host", "0.0.0.0"], "without tokens"),
    ]
    before = {data_dir: fingerprint(data_dir) for data_dir, _, _ in cases}

    def run(data_dir: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
        command = ["serve", *(["--port", "0"] if "--port" not in args else []), *args]
        try:
            return lea_backend(data_dir, *command, timeout=30)
        except subprocess.TimeoutExpired as exc:  # it served instead of refusing (and was killed)
            return subprocess.CompletedProcess(command, -9, str(exc.stdout), "(still running after 30 s)")

    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda c: run(c[0], c[1]), cases))
    finally:
        busy.close()
    problems = []
    for (data_dir, _, fragment), result in zip(cases, results, strict=True):
        lines = result.stderr.strip().splitlines()
        if result.returncode != 2 or len(lines) != 1 or not lines[0].startswith(ERROR_PREFIX):
            problems.append(f"{data_dir.name}: exit {result.returncode}, stderr {result.stderr[-300:]!r}")
        elif fragment not in lines[0]:
            problems.append(f"{data_dir.name}: {fragment!r} not in {lines[0]!r}")
        if data_dir.name.startswith("mistyped"):
            if data_dir.exists():
                problems.append(f"{data_dir.name}: a refused start-up created the data directory")
        elif fingerprint(data_dir) != before[data_dir]:
            changed = sorted(set(fingerprint(data_dir).items()) ^ set(before[data_dir].items()))
            problems.append(f"{data_dir.name}: files changed: {sorted({name for name, _ in changed})}")
    assert not problems, "\n".join(problems)


_HOLDER = textwrap.dedent(
    """
    import sys
    from backend.backend import Backend
    backend = Backend(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def test_a_start_up_refused_by_the_lock_changes_no_file(crashed: dict[str, Path], tmp_path: Path) -> None:
    data_dir = _copy(crashed["token"], tmp_path / "held")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(data_dir)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = fingerprint(data_dir)
        line = _one_error_line(lea_backend(data_dir, "serve", "--port", "0"))
        assert "already in use by another LEA process" in line
        assert fingerprint(data_dir) == before
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdin.close()
        holder.stdout.close()


def test_a_store_that_wrote_nothing_leaves_a_crashed_wal_alone(crashed: dict[str, Path], tmp_path: Path) -> None:
    """In-process: open the crashed directory for writing, restore, close without writing."""
    data_dir = _copy(crashed["token"], tmp_path / "open-close")
    before = fingerprint(data_dir)
    backend = Backend(data_dir)
    assert len(backend.manager.resources_of(ResourceKind.PEER)) == 12
    backend.manager.close(checkpoint=False)
    backend.close()
    assert fingerprint(data_dir) == before
    # A store that does write merges the log as before (and the data is all there).
    backend = Backend(data_dir).start()
    actions.store_resources(backend.manager, [make_peer("bench-new")], "test")
    backend.close()
    assert not (data_dir / "lea.db-wal").exists()
    assert len(lea_backend(data_dir, "list", "peer").stdout.splitlines()) == 1 + 13


def test_a_refused_admin_command_changes_no_file(crashed: dict[str, Path], tmp_path: Path) -> None:
    """Refused after opening the database (a rule, a missing or taken token name): the WAL stays as it was."""
    data_dir = _copy(crashed["token"], tmp_path / "commands")
    taken = tmp_path / "taken.json"
    taken.write_text(make_peer("BENCH-01").model_dump_json())
    before = fingerprint(data_dir)
    commands = [
        (["apply", str(taken)], "BENCH-01"),
        (["token", "revoke", "nobody"], "no token named 'nobody'"),
        (["token", "create", "--role", "viewer", "--name", "root"], "already exists"),
        (["token", "list"], None),
    ]
    for args, fragment in commands:
        result = lea_backend(data_dir, *args)
        if fragment is None:
            assert result.returncode == 0 and "root" in result.stdout, result.stderr
        else:
            assert fragment in _one_error_line(result)
        assert fingerprint(data_dir) == before, args


# -- a corrupted database ----------------------------------------------------------------------------
@pytest.fixture
def corrupted(tmp_path: Path) -> Path:
    """A clean data directory of 60 peers, no checkpoint, with one events page overwritten in the middle."""
    data_dir = tmp_path / "corrupted"
    backend = Backend(data_dir).start()
    try:
        for i in range(60):
            actions.store_resources(backend.manager, [make_peer(f"bench-{i:02}")], "seed")
    finally:
        backend.manager.close(checkpoint=False)
        backend.close()
    _corrupt_an_event_page(data_dir)
    return data_dir


def test_a_corrupted_database_is_refused_by_serve_and_every_read_command(corrupted: Path, tmp_path: Path) -> None:
    peer_file = tmp_path / "peer.json"
    peer_file.write_text(make_peer("bench-new").model_dump_json())

    def refused(args: list[str]) -> None:
        line = _one_error_line(lea_backend(corrupted, *args))
        assert line.startswith(f"{ERROR_PREFIX}{corrupted / 'lea.db'} is damaged: "), (args, line)

    before = fingerprint(corrupted)
    for args in (["serve", "--port", "0"], ["snapshot"], ["apply", str(peer_file)]):  # writers, one at a time
        refused(args)
        assert fingerprint(corrupted) == before, args
    readers = [["list", "peer"], ["events"], ["verify"]]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(refused, readers))
    # SQLite's read-only open of a WAL database creates the (empty) log and its index if missing.
    after = fingerprint(corrupted)
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) <= {"lea.db-wal", INDEX}
    assert not (corrupted / "lea.db-wal").exists() or (corrupted / "lea.db-wal").stat().st_size == 0


# -- read-only storage -------------------------------------------------------------------------------
def _as(prefix: list[str], data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*prefix, sys.executable, "-m", "backend", "--data-dir", str(data_dir), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=REPO)


@contextmanager
def read_only(data_dir: Path) -> Iterator[None]:
    """``data_dir`` and its files made read-only (as on read-only media), restored afterwards."""
    files = [p for p in data_dir.iterdir() if p.is_file()]
    for path in files:
        path.chmod(0o444)
    data_dir.chmod(0o555)
    try:
        yield
    finally:
        data_dir.chmod(0o755)
        for path in files:
            path.chmod(0o644)


def test_read_commands_on_read_only_media_read_the_wal_or_refuse(crashed: dict[str, Path], tmp_path: Path) -> None:
    prefix = bound_by_permissions()
    with_index = _copy(crashed["token"], tmp_path / "with-index")
    without_index = _copy(crashed["token"], tmp_path / "without-index")
    (without_index / "lea.db-shm").unlink()  # a copy of lea.db and its WAL only
    before = {d: fingerprint(d) for d in (with_index, without_index)}
    with read_only(with_index), read_only(without_index):
        if writable(with_index, prefix):
            pytest.skip("this user may write into a folder of mode 0o555")
        # With the WAL's index next to it SQLite reads the WAL in place: all 12 peers.
        listed = _as(prefix, with_index, "list", "peer")
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.splitlines()) == 1 + 12
        assert "12 events" in _as(prefix, with_index, "verify").stdout
        # Without it, the WAL cannot be read in place: refused, never "0 events, ok".
        for args in (["verify"], ["list", "peer"], ["events"], ["token", "list"]):
            result = _as(prefix, without_index, *args)
            line = _one_error_line(result)
            assert "lea.db-wal" in line and "read-only" in line and "copy" in line, line
    for data_dir, fingerprints in before.items():
        assert fingerprint(data_dir) == fingerprints


def test_token_list_works_on_a_read_only_data_directory(tmp_path: Path) -> None:
    prefix = bound_by_permissions()
    data_dir = tmp_path / "data"
    create_token(data_dir, "admin", "root")
    before = fingerprint(data_dir)
    with read_only(data_dir):
        if writable(data_dir, prefix):
            pytest.skip("this user may write into a folder of mode 0o555")
        result = _as(prefix, data_dir, "token", "list")
        assert result.returncode == 0, result.stderr
        assert [line.split()[:2] for line in result.stdout.splitlines()] == [["NAME", "ROLE"], ["root", "admin"]]
        line = _one_error_line(_as(prefix, data_dir, "token", "create", "--role", "viewer", "--name", "v"))
        assert "read-only" in line
    assert fingerprint(data_dir) == before


def test_token_list_never_creates_a_data_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    line = _one_error_line(lea_backend(missing, "token", "list"))
    assert "there is no LEA database in" in line and str(missing) in line
    assert not missing.exists()


# -- permissions --------------------------------------------------------------------------------------
@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, so that a missing mode would show as 0o644 / 0o755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_a_new_data_directory_and_its_database_are_private(tmp_path: Path, umask_022: None) -> None:
    data_dir = tmp_path / "new"
    create_token(data_dir, "admin", "root")  # creates the directory and lea.db
    with running_server(data_dir) as server:
        assert server.alive()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}
    assert modes == {
        "lea.db": 0o600, "lea.db-wal": 0o600, "lea.db-shm": 0o600, "lea.lock": 0o600, "logs": 0o700,
    }
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    # The same through apply and the in-process backend.
    peer_file = tmp_path / "peer.json"
    peer_file.write_text(make_peer("bench-01").model_dump_json())
    assert lea_backend(tmp_path / "applied", "apply", str(peer_file)).returncode == 0
    Backend(tmp_path / "embedded").close()
    for made in (tmp_path / "applied", tmp_path / "embedded"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
        assert stat.S_IMODE((made / "lea.db").stat().st_mode) == 0o600


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_an_existing_data_directory_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    chosen = tmp_path / "shared"
    chosen.mkdir(mode=0o750)
    chosen.chmod(0o750)
    Backend(chosen).close()
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o750  # the user's choice
    assert stat.S_IMODE((chosen / "lea.db").stat().st_mode) == 0o600  # the new database is still private


# -- an encrypted TLS key -----------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal")
def test_an_encrypted_tls_key_is_refused_without_asking_for_a_pass_phrase(tmp_path: Path) -> None:
    """On a terminal OpenSSL would prompt (twice) for the pass phrase and wait; LEA says why it refuses."""
    import fcntl
    import pty
    import select
    import termios

    tls = make_tls(tmp_path / "tls")
    key = _encrypted_key(tls, tmp_path / "tls" / "encrypted.key")
    data_dir = tmp_path / "data"
    master, slave = pty.openpty()
    command = [sys.executable, "-m", "backend", "--data-dir", str(data_dir), "serve", "--port", "0",
               "--tls-cert", str(tls.cert_path), "--tls-key", str(key)]
    process = subprocess.Popen(
        command, stdin=slave, stdout=slave, stderr=slave, cwd=REPO, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty is its terminal (/dev/tty)
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the terminal's other side closed
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        os.close(master)
    text = output.decode("utf-8", "replace")
    assert "pass phrase:" not in text.lower(), text
    assert process.returncode == 2, text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), text
    assert str(key) in lines[0] and "pass phrase" in lines[0]
    assert not data_dir.exists()
