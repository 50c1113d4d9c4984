"""The ``lea-backend`` admin CLI, run for real in a subprocess on temporary data directories.

Every bad input must end with exactly one ``lea-backend: error: ...`` line, a non-zero exit status
and the database file byte-for-byte as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from backend import actions
from backend.backend import Backend
from backend.storage.sqlite import SqliteEventStore
from resources import Checkpoint, Event, PeerDescriptor
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.permissions import bound_by_permissions, writable

ERROR_PREFIX = "lea-backend: error: "


def lea_backend_in_parallel(
    calls: Sequence[tuple[Path | None, Sequence[str], str | None]],
) -> list[subprocess.CompletedProcess[str]]:
    """Independent calls that take no lock (they must not contend for one data directory's lock)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(lambda call: lea_backend(call[0], *call[1], stdin=call[2]), calls))


def lea_backend(
    data_dir: Path | None, *args: str, stdin: str | None = None, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    command = [*prefix, sys.executable, "-m", "backend"]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    return subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def assert_one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit status 2, nothing on stdout, and exactly one error line on stderr naming ``fragments``."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), result.stderr
    assert result.stdout == ""
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def document(resource: Any) -> dict[str, Any]:
    data: dict[str, Any] = resource.model_dump(mode="json")
    return data


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_raw(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def db_bytes(data_dir: Path) -> bytes:
    return (data_dir / "lea.db").read_bytes()


@pytest.fixture
def fleet() -> tuple[PeerDescriptor, PeerDescriptor, Any]:
    leader, member = make_peer("bench-01"), make_peer("bench-02", can=True)
    return leader, member, make_cluster("cluster-a", leader, member)


@pytest.fixture
def seeded(data_dir: Path, fleet: tuple[Any, ...]) -> Path:
    """A data directory holding two peers and a cluster and no checkpoint (written in-process: fast)."""
    backend = Backend(data_dir)
    try:
        backend.manager.start()
        actions.store_resources(backend.manager, fleet, "seed")
    finally:
        backend.manager.close(checkpoint=False)
        backend.close()
    return data_dir


# -- apply, list, events, history -----------------------------------------------------------------
def test_apply_creates_then_updates_by_id(data_dir: Path, tmp_path: Path, fleet: tuple[Any, ...]) -> None:
    leader, member, cluster = fleet
    # {"resources": [...]}, clusters listed first: peers are still stored before the clusters.
    documents = {"resources": [document(r) for r in (cluster, leader, member)]}
    fleet_file = write_json(tmp_path / "fleet.json", documents)
    lines = ok(lea_backend(data_dir, "apply", str(fleet_file))).splitlines()
    assert lines[:3] == [
        "created peer bench-01 version 1",
        "created peer bench-02 version 1",
        "created cluster cluster-a version 1",
    ]
    first_revision = int(lines[3].removeprefix("revision "))

    moved = leader.model_copy(update={"location": "lab 2"})
    lines = ok(lea_backend(data_dir, "apply", "-", stdin=json.dumps(document(moved)))).splitlines()
    assert lines[0] == "updated peer bench-01 version 2"
    assert int(lines[1].removeprefix("revision ")) > first_revision

    table = ok(lea_backend(data_dir, "list", "peer")).splitlines()
    assert table[0].split() == ["NAME", "ID", "VERSION", "LOCATION", "INTERFACES", "DEVICES", "DEMO"]
    assert table[1].split()[:5] == ["bench-01", str(leader.id), "2", "lab", "2"]
    assert table[2].split()[:3] == ["bench-02", str(member.id), "1"]
    listed = json.loads(ok(lea_backend(data_dir, "list", "peer", "--json")))
    assert [(p["name"], p["version"], p["location"]) for p in listed] == [
        ("bench-01", 2, "lab 2"), ("bench-02", 1, None)
    ]
    clusters = ok(lea_backend(data_dir, "list", "cluster")).splitlines()
    assert clusters[1].split() == ["cluster-a", str(cluster.id), "1", "bench-01", "4", "no"]
    assert ok(lea_backend(data_dir, "list", "cluster_deployment")).split() == ["CLUSTER", "ID", "VERSION"]


@pytest.mark.parametrize(
    ("field", "value"), [("demo", "yes"), ("version", "1"), ("location", 7)], ids=["demo", "version", "location"]
)
def test_apply_is_strict_like_the_api(
    data_dir: Path, tmp_path: Path, fleet: tuple[Any, ...], field: str, value: Any
) -> None:
    peer = {**document(fleet[0]), field: value}
    line = assert_one_error(lea_backend(data_dir, "apply", str(write_json(tmp_path / "peer.json", peer))), field)
    assert "peer" in line
    assert not (data_dir / "lea.db").exists() or ok(lea_backend(data_dir, "list", "peer")).count("\n") <= 1


def test_volatile_kinds_are_never_stored(seeded: Path) -> None:
    result = lea_backend(seeded, "list", "peer_connection_state")
    assert (result.returncode, result.stdout) == (0, "")
    assert len(result.stderr.splitlines()) == 1 and "volatile" in result.stderr
    # --data-dir is accepted after the command name too.
    listed = ok(lea_backend(None, "list", "cluster_state", "--json", "--data-dir", str(seeded)))
    assert json.loads(listed) == []


def test_events_and_history(seeded: Path, tmp_path: Path, fleet: tuple[Any, ...]) -> None:
    leader, _, _ = fleet
    renamed = leader.model_copy(update={"name": "bench-11"})
    ok(lea_backend(seeded, "apply", str(write_json(tmp_path / "renamed.json", [document(renamed)]))))

    lines = ok(lea_backend(seeded, "events")).splitlines()
    assert len(lines) == 4
    revision, at, actor, kind_of_change, kind, resource_id, name = lines[0].split()
    assert (kind_of_change, kind, resource_id, name) == ("created", "peer", str(leader.id), "bench-01")
    assert at.endswith("Z") and actor and int(revision) >= 1
    assert lines[3].split()[3:] == ["updated", "peer", str(leader.id), "bench-11"]

    as_json = ok(lea_backend(seeded, "events", "--json")).splitlines()
    events = [Event.model_validate_json(line) for line in as_json]
    assert [e.revision for e in events] == sorted(e.revision for e in events)
    after = ok(lea_backend(seeded, "events", "--after", str(events[0].revision), "--limit", "2", "--json"))
    assert [Event.model_validate_json(line) for line in after.splitlines()] == events[1:3]

    history = ok(lea_backend(seeded, "history", "peer", str(leader.id))).splitlines()
    assert [line.split()[3] for line in history] == ["created", "updated"]
    as_json = ok(lea_backend(seeded, "history", "peer", str(leader.id), "--json")).splitlines()
    versions = [Event.model_validate_json(line).resource for line in as_json]
    assert [r.version for r in versions if r is not None] == [1, 2]
    assert_one_error(lea_backend(seeded, "history", "peer", str(events[2].id)), "no stored events")


def test_a_clusters_history_names_who_deployed_and_undeployed_it(seeded: Path, fleet: tuple[Any, ...]) -> None:
    cluster = fleet[2]
    backend = Backend(seeded)
    try:
        backend.manager.start()
        actions.store_cluster_deployment(backend.manager, cluster.id, "erin")
        actions.delete_cluster_deployment(backend.manager, cluster.id, "frank")
    finally:
        backend.manager.close(checkpoint=False)
        backend.close()
    lines = ok(lea_backend(seeded, "history", "cluster", str(cluster.id))).splitlines()
    assert [(line.split()[2], line.split()[3], line.split()[4]) for line in lines] == [
        ("seed", "created", "cluster"), ("erin", "created", "cluster_deployment"),
        ("frank", "deleted", "cluster_deployment"),
    ]
    assert all(line.split()[1].endswith("Z") for line in lines)


# -- all or nothing --------------------------------------------------------------------------------
def test_a_file_with_one_bad_document_stores_nothing(seeded: Path, tmp_path: Path) -> None:
    before = db_bytes(seeded)
    good = document(make_peer("bench-03"))

    duplicate_name = write_json(tmp_path / "dup.json", [good, document(make_peer("BENCH-01"))])
    assert_one_error(lea_backend(seeded, "apply", str(duplicate_name)), "BENCH-01")
    invalid = write_json(tmp_path / "invalid.json", [good, {**document(make_peer("bench-04")), "name": "x"}])
    assert_one_error(lea_backend(seeded, "apply", str(invalid)), "document 2", "name")

    assert db_bytes(seeded) == before


# -- verify, snapshot, compact ---------------------------------------------------------------------
def _checkpoint_revisions(data_dir: Path) -> list[int]:
    store = SqliteEventStore(data_dir / "lea.db", read_only=True)
    try:
        return [c.revision for c in store.checkpoints()]
    finally:
        store.close()


def _event_count(data_dir: Path) -> int:
    store = SqliteEventStore(data_dir / "lea.db", read_only=True)
    try:
        return store.event_count()
    finally:
        store.close()


def test_verify_snapshot_and_compact(seeded: Path, tmp_path: Path, fleet: tuple[Any, ...]) -> None:
    assert "no checkpoint to compare with" in ok(lea_backend(seeded, "verify"))
    assert ok(lea_backend(seeded, "snapshot")).startswith("checkpoint written at revision ")
    moved = fleet[0].model_copy(update={"location": "lab 2"})
    ok(lea_backend(seeded, "apply", str(write_json(tmp_path / "moved.json", document(moved)))))
    ok(lea_backend(seeded, "snapshot"))
    checkpoints = _checkpoint_revisions(seeded)
    assert len(checkpoints) == 2
    assert f"matches the checkpoint at revision {checkpoints[0]}" in ok(lea_backend(seeded, "verify"))
    events_before = _event_count(seeded)

    report = ok(lea_backend(seeded, "compact", "--keep", "1")).splitlines()
    assert report[0] == (
        f"pruned 1 checkpoint (revision {checkpoints[1]}); kept 1 checkpoint (revision {checkpoints[0]})"
    )
    assert report[1].startswith("lea.db: ") and "bytes after" in report[1]
    assert _checkpoint_revisions(seeded) == checkpoints[:1]
    assert _event_count(seeded) == events_before  # never deletes an event
    assert ok(lea_backend(seeded, "verify")).startswith("verify: ok")


def test_verify_detects_a_checkpoint_that_disagrees_with_the_events(
    seeded: Path, fleet: tuple[Any, ...]
) -> None:
    store = SqliteEventStore(seeded / "lea.db")
    try:  # a checkpoint that lost two of the three resources
        leader = fleet[0].model_copy(update={"version": 1})
        store.write_checkpoint(Checkpoint(revision=store.last_revision(), resources=(leader,)))
    finally:
        store.close()
    result = lea_backend(seeded, "verify")
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("verify: MISMATCH")
    assert f"cluster {fleet[2].id} is in the replay but not in the checkpoint" in result.stdout
    assert f"peer {fleet[1].id} is in the replay but not in the checkpoint" in result.stdout


# -- schema ----------------------------------------------------------------------------------------
def test_schema_prints_json_schema() -> None:
    everything = json.loads(ok(lea_backend(None, "schema")))
    assert set(everything) == {"resource", "event", "state_snapshot"}
    assert {"peer", "cluster"} <= {
        option["properties"]["kind"]["const"] for option in everything["resource"]["$defs"].values()
        if "kind" in option.get("properties", {}) and "const" in option["properties"]["kind"]
    }
    peer = json.loads(ok(lea_backend(None, "schema", "peer")))
    assert peer["title"] == "PeerDescriptor" and "name" in peer["required"]
    assert_one_error(lea_backend(None, "schema", "peers"), "unknown kind 'peers'")


# -- bad input -------------------------------------------------------------------------------------
def test_bad_files_are_refused_and_the_database_untouched(seeded: Path, tmp_path: Path) -> None:
    before = db_bytes(seeded)
    not_utf8 = tmp_path / "latin1.json"
    not_utf8.write_bytes(b'{"kind": "peer", "name": "b\xe9nch"}')
    cases: dict[str, tuple[str, str | None, str]] = {
        "malformed JSON": (str(write_raw(tmp_path / "bad.json", '{"kind": "peer",')), None, "not valid JSON"),
        "malformed JSON on stdin": ("-", '[{"kind": "peer"', "<stdin> is not valid JSON"),
        "missing file": (str(tmp_path / "missing.json"), None, "No such file or directory"),
        "a directory": (str(tmp_path), None, "cannot read"),
        "not UTF-8": (str(not_utf8), None, "not UTF-8"),
        "unknown kind": ("-", '{"kind": "gateway", "id": "x"}', "'kind' must be one of cluster, peer"),
        "resources not a list": ("-", '{"resources": {}}', "'resources' must be a list"),
        "no documents": ("-", "[]", "holds no documents"),
    }
    results = lea_backend_in_parallel([(seeded, ["apply", file], stdin) for file, stdin, _ in cases.values()])
    for (name, (_, _, fragment)), result in zip(cases.items(), results, strict=True):
        assert result.returncode == 2, name
        assert_one_error(result, fragment)
    assert db_bytes(seeded) == before


def test_command_line_mistakes(seeded: Path) -> None:
    assert_one_error(lea_backend(seeded, "list", "gateway"), "unknown kind 'gateway'", "peer, cluster")
    assert_one_error(lea_backend(seeded, "history", "peer", "bench-01"), "not a resource id")
    for args in (["events", "--limit", "0"], ["frobnicate"]):
        result = lea_backend(seeded, *args)
        assert result.returncode == 2 and ": error: " in result.stderr and "Traceback" not in result.stderr


WRITE_COMMANDS = (["snapshot"], ["compact"])
READ_COMMANDS = (["list", "peer"], ["verify"])


def _damaged_databases(tmp_path: Path, seeded: Path) -> Iterator[tuple[str, Path]]:
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "lea.db").write_bytes(b"this is not a database at all\n" * 100)
    yield "not an SQLite file", garbage

    torn = tmp_path / "torn"
    shutil.copytree(seeded, torn)
    content = bytearray((torn / "lea.db").read_bytes())
    content[4096:] = bytes(range(256)) * ((len(content) - 4096) // 256)  # page 1 intact, the rest torn
    (torn / "lea.db").write_bytes(bytes(content))
    yield "a corrupted SQLite file", torn

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "lea.db") as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.close()
    yield "another program's SQLite database", foreign


def test_damaged_or_foreign_databases_are_refused_untouched(seeded: Path, tmp_path: Path) -> None:
    peer_file = str(write_json(tmp_path / "peer.json", document(make_peer("bench-09"))))
    damaged = dict(_damaged_databases(tmp_path, seeded))
    before = {name: db_bytes(data_dir) for name, data_dir in damaged.items()}
    # Readers in parallel; the writers, which take the lock, one at a time.
    reads = [(name, ["list", "peer"]) for name in damaged] + [("a corrupted SQLite file", ["verify"])]
    results = lea_backend_in_parallel([(damaged[name], args, None) for name, args in reads])
    writes = [(name, ["apply", peer_file]) for name in damaged] + [("a corrupted SQLite file", ["compact"])]
    results += [lea_backend(damaged[name], *args) for name, args in writes]
    for (name, args), result in zip([*reads, *writes], results, strict=True):
        assert result.returncode == 2, (name, args, result.stderr)
        assert_one_error(result, "lea.db")
    for name, data_dir in damaged.items():
        assert db_bytes(data_dir) == before[name], name


def test_a_missing_data_directory_is_reported_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    commands = (*READ_COMMANDS, *WRITE_COMMANDS)
    for result in lea_backend_in_parallel([(missing, args, None) for args in commands]):
        assert_one_error(result, "there is no LEA database in", str(missing))
    assert not missing.exists()


def test_a_data_directory_that_cannot_be_created(tmp_path: Path) -> None:
    a_file = write_raw(tmp_path / "a-file", "not a folder")
    peer_file = str(write_json(tmp_path / "peer.json", document(make_peer("bench-09"))))
    assert_one_error(lea_backend(a_file / "data", "apply", peer_file), "cannot create data directory")
    assert a_file.read_text(encoding="utf-8") == "not a folder"


def test_a_read_only_data_directory_or_database(seeded: Path, tmp_path: Path) -> None:
    prefix = bound_by_permissions()
    before = db_bytes(seeded)
    peer_file = str(write_json(tmp_path / "peer.json", document(make_peer("bench-09"))))
    seeded.chmod(0o555)
    try:
        if writable(seeded, prefix):
            pytest.skip("this user may write into a folder of mode 0o555")
        assert "bench-01" in ok(lea_backend(seeded, "list", "peer", prefix=prefix))  # reading still works
        ok(lea_backend(seeded, "verify", prefix=prefix))
        for args in (["apply", peer_file], *WRITE_COMMANDS):
            assert_one_error(lea_backend(seeded, *args, prefix=prefix), "is read-only")
        seeded.chmod(0o755)
        (seeded / "lea.db").chmod(0o444)  # a writable folder, a read-only database file
        assert_one_error(lea_backend(seeded, "apply", peer_file, prefix=prefix), "readonly database")
    finally:
        seeded.chmod(0o755)
        (seeded / "lea.db").chmod(0o644)
    assert db_bytes(seeded) == before


# -- the lock ----------------------------------------------------------------------------------------
_HOLDER = textwrap.dedent(
    """
    import sys
    from backend.backend import Backend
    backend = Backend(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    backend.close()
    """
)


@pytest.fixture
def held(seeded: Path) -> Iterator[Path]:
    """``seeded``, opened for writing by another process for as long as the test runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(seeded)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield seeded
    finally:
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()


def test_writers_are_refused_while_another_process_holds_the_data_dir(held: Path, tmp_path: Path) -> None:
    before = db_bytes(held)
    peer_file = str(write_json(tmp_path / "peer.json", document(make_peer("bench-09"))))
    for args in (["apply", peer_file], *WRITE_COMMANDS):
        assert_one_error(lea_backend(held, *args), "already in use by another LEA process")
    assert "bench-01" in ok(lea_backend(held, "list", "peer"))  # readers take no lock
    assert ok(lea_backend(held, "verify")).startswith("verify: ok")
    assert db_bytes(held) == before


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("lea-backend")
    if not script.exists():
        pytest.skip("lea-backend is not installed next to this interpreter")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "apply" in result.stdout and "compact" in result.stdout


# -- hostile input: one line, exit 2, never a traceback ------------------------------------------------
def test_hostile_documents_are_refused_in_one_line(seeded: Path, tmp_path: Path) -> None:
    before = db_bytes(seeded)
    nested = write_raw(tmp_path / "nested.json", "[" * 100_000 + "]" * 100_000)
    long_number = write_raw(tmp_path / "number.json", '{"kind": "peer", "version": ' + "7" * 5000 + "}")
    cases: dict[str, tuple[str, str | None, str]] = {
        "100k nested arrays": (str(nested), None, "nested too deeply"),
        "100k nested objects on stdin": ("-", '{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
        "a 5,000-digit integer": (str(long_number), None, "number too long"),
    }
    if Path("/dev/zero").exists():
        cases["/dev/zero"] = ("/dev/zero", None, "larger than 64 MiB")
    results = lea_backend_in_parallel([(seeded, ["apply", file], stdin) for file, stdin, _ in cases.values()])
    for (name, (_, _, fragment)), result in zip(cases.items(), results, strict=True):
        assert "Traceback" not in result.stderr, name
        assert_one_error(result, fragment)
    assert db_bytes(seeded) == before


def test_numbers_out_of_range_on_the_command_line(seeded: Path) -> None:
    cases = [
        (["serve", "--port", "70000"], "must be at most 65535, not 70000"),
        (["serve", "--port", "-1"], "must be at least 0"),
        (["events", "--after", str(2**63)], f"must be at most {2**63 - 1}"),
        (["events", "--limit", "9" * 5000], "not a 5000-digit number"),
        (["compact", "--keep", "1e3"], "is not a whole number"),
    ]
    results = lea_backend_in_parallel([(seeded, args, None) for args, _ in cases])
    for (args, fragment), result in zip(cases, results, strict=True):
        line = assert_one_error(result, "argument", fragment)
        assert "usage:" not in result.stderr, args
        assert f"see `lea-backend {args[0]} --help`" in line


def _damaged_copy(seeded: Path, target: Path, sql: str) -> Path:
    shutil.copytree(seeded, target)
    conn = sqlite3.connect(target / "lea.db")
    try:
        conn.execute(sql)
        conn.commit()
    finally:
        conn.close()
    return target


def test_a_damaged_meta_or_event_row_is_refused_in_one_line(seeded: Path, tmp_path: Path) -> None:
    peer_file = str(write_json(tmp_path / "peer.json", document(make_peer("bench-09"))))
    last = "(SELECT max(revision) FROM events)"
    cases = [
        ("UPDATE meta SET value = 'two' WHERE key = 'schema_version'", "its meta schema_version is 'two'",
         [["list", "peer"], ["apply", peer_file]]),
        ("UPDATE meta SET value = 'x' WHERE key = 'revision_reserved'", "its meta revision_reserved is 'x'",
         [["apply", peer_file]]),
        (f"UPDATE events SET kind = 'gateway' WHERE revision = {last}", "has an unknown kind 'gateway'",
         [["events"], ["verify"], ["list", "cluster"]]),
        (f"UPDATE events SET type = 'renamed' WHERE revision = {last}", "has an unknown type 'renamed'",
         [["events"], ["verify"]]),
        (f"UPDATE events SET payload = '{{' WHERE revision = {last}", "cannot be read (invalid stored cluster",
         [["events"], ["verify"]]),
        (f"UPDATE events SET at = 'yesterday' WHERE revision = {last}", "cannot be read (Invalid isoformat",
         [["events"]]),
    ]
    calls, expected = [], []
    for i, (sql, fragment, commands) in enumerate(cases):
        data_dir = _damaged_copy(seeded, tmp_path / f"damaged-{i}", sql)
        for args in commands:
            calls.append((data_dir, args, None))
            expected.append((data_dir, fragment, db_bytes(data_dir)))
    # Readers and writers of different directories: no lock is contended.
    for (data_dir, fragment, before), result in zip(expected, lea_backend_in_parallel(calls), strict=True):
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith(ERROR_PREFIX + str(data_dir / "lea.db") + " is damaged: "), lines[0]
        assert fragment in lines[0], lines[0]
        assert db_bytes(data_dir) == before
