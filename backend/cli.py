"""``lea-backend``: the admin CLI on a data directory.

Read commands (list, events, history, verify, schema, token list) open ``lea.db`` read-only and take no
lock, so they work while a LEA runs and on read-only storage. Write commands (apply, snapshot, compact)
open it through ``Backend``, which holds the data directory's exclusive lock. Bad input ends with one
line on stderr, ``lea-backend: error: <message>``, exit status 2, and the database left untouched.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

from pydantic import ValidationError

from backend import admin, restore
from backend.backend import Backend, os_actor
from backend.datadir import DataDir
from backend.documents import apply_resources, parse_document
from backend.logs import setup_logging
from backend.settings import load_settings
from backend.state import State
from backend.storage.base import CheckpointInfo, EventStore
from backend.storage.pg_target import PostgresTarget, is_postgres_url
from backend.storage.sqlite import SqliteEventStore
from backend.stores import StoreTarget, open_event_store, open_token_store, resolve_store
from backend.tokens import Role, TokenStore, check_peer_binding
from resources.app import default_data_dir
from resources.cli_config import ConfigError, subcommand_parser, with_config
from resources.cluster import ClusterDescriptor
from resources.errors import DataDirError, InvalidDocument, LeaError, NotFound, invalid_resource_from
from resources.events import Event, StateSnapshot
from resources.kinds import PERSISTED_KINDS, ResourceKind, history_kinds
from resources.peer import PeerDescriptor
from resources.resource import MODEL_BY_KIND, RESOURCE_ADAPTER, AnyResource

if TYPE_CHECKING:
    from backend.migrate import Side

PROG = "lea-backend"
EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_ERROR = 2

Row = tuple[str, ...]


class UsageError(LeaError):
    code = "usage"
    title = "Bad command line"


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (no usage block), like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        argv = with_config(sys.argv[1:] if argv is None else argv, "serve", subcommand_parser(parser, "serve"))
    except ConfigError as exc:
        return _fail(str(exc))
    args = parser.parse_args(argv)
    if args.run is not cmd_serve and not logging.getLogger().handlers:
        # One-shot commands: failures reach the user as the one error line below, not as log records
        # on stderr too. ``serve`` logs (cmd_serve).
        logging.getLogger().addHandler(logging.NullHandler())
    try:
        return int(args.run(args))
    except BrokenPipeError:
        # The reader went away (``lea-backend events | head``): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except LeaError as exc:
        return _fail(exc.message)
    except OSError as exc:
        return _fail(f"{exc.filename or args.data_dir}: {exc.strerror or exc}")
    except _postgres_error() as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _fail(f"the PostgreSQL store failed: {reason}")
    except sqlite3.OperationalError as exc:
        return _fail(f"cannot use the LEA database {DataDir(args.data_dir).db_path}: {exc}")
    except sqlite3.DatabaseError as exc:  # SQLite found the file damaged
        return _fail(f"{DataDir(args.data_dir).db_path} is damaged ({exc}); it was left untouched")
    except ValidationError as exc:
        detail = invalid_resource_from(exc, "stored resource").message
        return _fail(f"the LEA database in {args.data_dir} holds data this LEA cannot read: {detail}")


class _NoPostgres(Exception):
    """Never raised: what ``_postgres_error`` names while psycopg was not imported."""


def _postgres_error() -> type[Exception]:
    """psycopg's base error once a PostgreSQL store was used (psycopg is imported only then:
    backend/storage/pg_target.py); an error nothing raises before."""
    psycopg = sys.modules.get("psycopg")
    error = getattr(psycopg, "Error", None)
    return error if isinstance(error, type) and issubclass(error, Exception) else _NoPostgres


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


# -- the command line ----------------------------------------------------------------------------
STORE_HELP = (
    "a PostgreSQL store, postgresql://USER@HOST:PORT/DATABASE, instead of the data directory's lea.db "
    "(default: lea.toml's store); the password never goes in it: PGPASSWORD, ~/.pgpass or --store-password-file"
)
PASSWORD_FILE_HELP = "a file holding the PostgreSQL password (alone, or libpq's passfile lines)"


def build_parser() -> argparse.ArgumentParser:
    data_dir_help = f"the data directory (default: {default_data_dir()})"
    parser = _Parser(prog=PROG, description="Administer a LEA backend's data directory.")
    parser.add_argument(
        "--data-dir", type=Path, default=default_data_dir(), metavar="DIR", help=data_dir_help
    )
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)
    parser.add_argument("--store-password-file", type=Path, metavar="FILE", help=PASSWORD_FILE_HELP)
    # Also accepted after the command name; SUPPRESS keeps the global value when it is not given there.
    common = _Parser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, metavar="DIR", help=data_dir_help)
    common.add_argument("--store", default=argparse.SUPPRESS, metavar="URL", help=STORE_HELP)
    common.add_argument(
        "--store-password-file", type=Path, default=argparse.SUPPRESS, metavar="FILE", help=PASSWORD_FILE_HELP
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    apply = command("apply", cmd_apply, "create or update peers and clusters from JSON, all or nothing")
    apply.add_argument(
        "file", metavar="FILE",
        help="a JSON document, a list of them, or {\"resources\": [...]}; '-' reads standard input",
    )
    listing = command("list", cmd_list, "list the stored resources of one kind")
    listing.add_argument("kind", metavar="KIND", help=f"one of: {_kind_names()}")
    listing.add_argument("--json", action="store_true", help="print a JSON list of the resources")
    events = command("events", cmd_events, "print the stored events, oldest first")
    events.add_argument("--after", type=_count(0), default=0, metavar="R", help="events after revision R")
    events.add_argument("--limit", type=_count(1), metavar="N", help="at most N events")
    events.add_argument("--json", action="store_true", help="print one JSON event per line")
    history = command(
        "history", cmd_history,
        "print every stored event of one resource, oldest first (a cluster's with its deployment's)",
    )
    history.add_argument("kind", metavar="KIND", help=f"one of: {_kind_names()}")
    history.add_argument("id", metavar="ID", help="the resource's id (a UUID)")
    history.add_argument("--json", action="store_true", help="print one JSON event per line")
    command("verify", cmd_verify, "replay every event from zero and compare with the newest checkpoint")
    command("snapshot", cmd_snapshot, "write a checkpoint at the current revision now")
    compact = command("compact", cmd_compact, "prune old checkpoints and VACUUM (events are never deleted)")
    compact.add_argument("--keep", type=_count(1), metavar="N",
                         help="valid checkpoints to keep (default: the checkpoints_kept setting)")
    schema = command("schema", cmd_schema, "print the JSON Schema of the resources, events and snapshots")
    schema.add_argument("kind", metavar="KIND", nargs="?", help=f"only this kind, one of: {_kind_names()}")
    serve = command("serve", cmd_serve, "serve the backend over HTTP and WebSocket (see docs/protocol.md)")
    serve.add_argument("--config", type=Path, metavar="FILE",
                       help="read these options from a TOML file (the lea-server package's /etc/lea/lea.toml: host,"
                            " port, tls-cert, ...); the command line's options win")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_count(0, 65535), default=8421, help="port (default: 8421; 0 picks a free one)")
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="TLS certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="TLS private key (PEM)")
    serve.add_argument("--insecure-http", action="store_true",
                       help="allow plain HTTP on a non-loopback address (TLS terminated elsewhere)")
    serve.add_argument("--insecure-no-auth", action="store_true", help="no tokens needed (loopback only)")
    serve.add_argument("--demo", action="store_true",
                       help="seed the demo fleet when missing and simulate the demo benches")
    serve.add_argument("--agent-heartbeat", type=_seconds, metavar="S",
                       help="seconds between heartbeats on bench agents' connections (default: 10)")
    serve.add_argument("--agent-timeout", type=_seconds, metavar="S",
                       help="seconds of silence after which a bench agent is offline (default: 3 heartbeats)")
    serve.add_argument("--child", action="store_true",
                       help="run as LEA's own backend process: session token on stdin's first line, one ready "
                       "line on stdout, exit cleanly when stdin closes (LEA starts it so; loopback only)")
    serve.add_argument("--agents-listen", type=_host_port, metavar="HOST:PORT",
                       help="with --child: accept bench agents (lea-peer) on HOST:PORT")
    serve.add_argument("--standby", action="store_true",
                       help="PostgreSQL store only: when another server holds the database, wait (503 'standby', "
                       "/healthz too) and take over when it stops (docs/server.md)")
    serve.add_argument("--agents-tls-cert", type=Path, metavar="FILE", help="TLS certificate for --agents-listen")
    serve.add_argument("--agents-tls-key", type=Path, metavar="FILE", help="TLS private key for --agents-listen")
    serve.add_argument("--demo-delay-scale", type=_scale, default=1.0, metavar="F",
                       help="factor of the demo benches' simulated delays (default: 1; 0: instant, for benchmarks)")
    migrate = command(
        "migrate", cmd_migrate,
        "copy every event, checkpoint and token into an empty store, all or nothing, then verify both",
    )
    migrate.add_argument("--from", dest="source", metavar="STORE",
                         help="a data directory or postgresql://USER@HOST:PORT/DATABASE (default: the store of "
                         "--data-dir: --store, lea.toml's store, or its lea.db)")
    migrate.add_argument("--to", dest="destination", metavar="STORE", required=True,
                         help="an empty PostgreSQL database (postgresql://...) or a data directory without lea.db")
    migrate.add_argument("--from-password-file", type=Path, metavar="FILE",
                         help="the password of a PostgreSQL --from (else PGPASSWORD or ~/.pgpass)")
    migrate.add_argument("--to-password-file", type=Path, metavar="FILE",
                         help="the password of a PostgreSQL --to (else PGPASSWORD or ~/.pgpass)")
    token = commands.add_parser("token", help="create, list and revoke API tokens (works while serving)")
    tokens = token.add_subparsers(title="token commands", metavar="ACTION", required=True)
    create = tokens.add_parser("create", parents=[common], help="create a token and print it once")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", required=True, help="who uses it; recorded as the actor of their changes")
    create.add_argument("--peer-id", type=_uuid, metavar="UUID",
                        help="the peer a bench agent's token is bound to (required with --role peer, only then)")
    create.set_defaults(run=cmd_token_create)
    tokens.add_parser("list", parents=[common], help="list tokens (names and roles)").set_defaults(
        run=cmd_token_list
    )
    revoke = tokens.add_parser("revoke", parents=[common], help="revoke a token; effective immediately")
    revoke.add_argument("name")
    revoke.set_defaults(run=cmd_token_revoke)
    return parser


#: The largest number SQLite stores (revisions, limits): anything above is refused on the command line.
MAX_COUNT = 2**63 - 1


def _count(minimum: int, maximum: int = MAX_COUNT) -> Callable[[str], int]:
    def parse(text: str) -> int:
        digits = text.strip().removeprefix("-").removeprefix("+")
        if digits.isdecimal() and len(digits) > len(str(maximum)):  # int() of 5,000 digits would refuse anyway
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not a {len(digits)}-digit number")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise UsageError(f"{text!r}: give more than 0 and at most 3600 seconds")
    return value


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not 0 <= value <= 100:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {text[:40]}")
    return value


def _kind_names() -> str:
    return ", ".join(k.value for k in ResourceKind)


def _kind(text: str) -> ResourceKind:
    try:
        return ResourceKind(text)
    except ValueError:
        raise UsageError(f"unknown kind {text!r}; expected one of: {_kind_names()}") from None


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a resource id (a UUID)") from None


# -- opening the data directory ------------------------------------------------------------------
def _target(args: argparse.Namespace) -> StoreTarget:
    """The PostgreSQL store the command line or lea.toml names, or None for the data directory's lea.db."""
    settings = load_settings(args.data_dir, store=args.store, store_password_file=args.store_password_file)
    return resolve_store(DataDir(args.data_dir), settings)


def _database(data_dir: Path) -> Path:
    """The data directory's ``lea.db``, which must exist: only ``apply`` ever creates one."""
    path = DataDir(data_dir).db_path
    if not path.is_file():
        raise DataDirError(f"there is no LEA database in {data_dir} (no {path.name})", path=str(data_dir))
    return path


@contextmanager
def _read_store(args: argparse.Namespace) -> Iterator[EventStore]:
    """The store opened read-only, without the lock: works next to a running LEA."""
    store = open_event_store(DataDir(args.data_dir), _target(args), read_only=True)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _backend(args: argparse.Namespace) -> Iterator[Backend]:
    """The backend with the exclusive lock; closed without the shutdown checkpoint (writes nothing extra)."""
    backend = Backend(args.data_dir, store=_target(args))
    try:
        yield backend
    finally:
        try:
            backend.manager.close(checkpoint=False)
        finally:
            backend.close()


# -- apply ---------------------------------------------------------------------------------------
def cmd_apply(args: argparse.Namespace) -> int:
    resources = load_documents(args.file)  # before opening anything: bad input never touches the database
    with _backend(args) as backend:
        backend.manager.start()  # the writes only: operators and peers are a running LEA's business
        tx = apply_resources(backend.manager, resources, os_actor())
    for event in tx.events:
        version = event.resource.version if event.resource is not None else 0
        name = _name_of(event.resource) or event.id
        print(f"{event.type.value} {event.kind.value} {name} version {version}")
    print(f"revision {tx.revision}")
    return EXIT_OK


def load_documents(file: str) -> list[AnyResource]:
    """Every peer or cluster document of ``file`` ('-' for standard input), validated."""
    label = "<stdin>" if file == "-" else file
    data = _parse_json(_read_text(file, label), label)
    if isinstance(data, dict) and "resources" in data and "kind" not in data:
        data = data["resources"]
        if not isinstance(data, list):
            raise InvalidDocument(f"{label}: 'resources' must be a list of documents")
    documents = data if isinstance(data, list) else [data]
    if not documents:
        raise InvalidDocument(f"{label} holds no documents")
    return [parse_document(doc, f"{label}, document {i}") for i, doc in enumerate(documents, 1)]


#: The largest file ``apply`` reads (a thousand peers are about 1 MiB); /dev/zero is refused, not read forever.
MAX_DOCUMENT_BYTES = 64 * 2**20


def _read_text(file: str, label: str) -> str:
    try:
        if file == "-":
            raw = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
        else:
            with open(file, "rb") as handle:
                raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise InvalidDocument(f"cannot read {label}: {exc.strerror or exc}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(f"{label} is larger than {MAX_DOCUMENT_BYTES // 2**20} MiB; apply it in parts")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidDocument(f"{label} is not UTF-8 text") from None


def _parse_json(text: str, label: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidDocument(
            f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidDocument(f"{label} is nested too deeply to be a LEA document") from None
    except ValueError:  # Python refuses to convert integers of more than 4,300 digits
        raise InvalidDocument(f"{label} holds a number too long to be read") from None


# -- list ----------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    kind = _kind(args.kind)
    if not kind.persisted:
        _note_volatile(kind)
        if args.json:
            print("[]")
        return EXIT_OK
    with _read_store(args) as store:
        state, _ = restore.replay(store, use_checkpoint=True)
    resources = sorted(state.of_kind(kind).values(), key=_sort_key)
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in resources], indent=2))
    else:
        headers, row = _TABLES[kind]
        _print_table(headers, [row(state, r) for r in resources])
    return EXIT_OK


def _note_volatile(kind: ResourceKind) -> None:
    print(f"{kind.value} is volatile state: it is never stored, so there is nothing to show", file=sys.stderr)


def _peer_row(state: State, peer: AnyResource) -> Row:
    assert isinstance(peer, PeerDescriptor)
    return (
        peer.name, str(peer.id), str(peer.version), peer.location or "", str(len(peer.interfaces)),
        str(len(peer.devices)), "demo" if peer.demo else "",
    )


def _cluster_row(state: State, cluster: AnyResource) -> Row:
    assert isinstance(cluster, ClusterDescriptor)
    leader = state.peer(cluster.leader)
    return (
        cluster.name, str(cluster.id), str(cluster.version), leader.name if leader else str(cluster.leader),
        str(len(cluster.devices)), "yes" if state.is_deployed(cluster.id) else "no",
    )


def _deployment_row(state: State, deployment: AnyResource) -> Row:
    cluster = state.cluster(deployment.id)
    return (cluster.name if cluster else "(missing cluster)", str(deployment.id), str(deployment.version))


_TABLES: dict[ResourceKind, tuple[Row, Callable[[State, AnyResource], Row]]] = {
    ResourceKind.PEER: (("NAME", "ID", "VERSION", "LOCATION", "INTERFACES", "DEVICES", "DEMO"), _peer_row),
    ResourceKind.CLUSTER: (("NAME", "ID", "VERSION", "LEADER", "DEVICES", "DEPLOYED"), _cluster_row),
    ResourceKind.CLUSTER_DEPLOYMENT: (("CLUSTER", "ID", "VERSION"), _deployment_row),
}
assert set(_TABLES) == PERSISTED_KINDS


def _print_table(headers: Row, rows: Sequence[Row]) -> None:
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    for line in (headers, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _sort_key(resource: AnyResource) -> tuple[str, str]:
    return (_name_of(resource) or "").casefold(), str(resource.id)


def _name_of(resource: AnyResource | None) -> str | None:
    return resource.name if isinstance(resource, PeerDescriptor | ClusterDescriptor) else None


# -- events and history --------------------------------------------------------------------------
def cmd_events(args: argparse.Namespace) -> int:
    with _read_store(args) as store:
        for event in store.read_events(after=args.after, limit=args.limit):
            print(_format_event(event, args.json))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    kind, resource_id = _kind(args.kind), _uuid(args.id)
    if not kind.persisted:
        _note_volatile(kind)
        return EXIT_OK
    with _read_store(args) as store:
        events = list(store.read_events(kinds=history_kinds(kind), resource_id=resource_id))
    if not events:
        raise NotFound(f"no stored events for {kind.value} {resource_id}")
    for event in events:
        print(_format_event(event, args.json))
    return EXIT_OK


def _format_event(event: Event, as_json: bool) -> str:
    if as_json:
        return event.model_dump_json()
    at = event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = _name_of(event.resource) or ""
    return (
        f"{event.revision:>8}  {at}  {event.actor:<12}  {event.type.value:<7}  {event.kind.value:<18}  "
        f"{event.id}  {name}"
    ).rstrip()


# -- verify, snapshot, compact -------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    with _read_store(args) as store:
        integrity = store.integrity_check()
        if integrity != "ok":  # reading on could fail anywhere: say what SQLite found
            raise store.damaged(f"the integrity check reports {integrity.splitlines()[0][:200]!r}")
        report = admin.verify(store)
        if report.checkpoint_revision is None:
            restore.replay(store, use_checkpoint=False)  # still read and validate every event
    problems = list(report.mismatches)
    if problems:
        print(f"verify: MISMATCH ({len(problems)} problems; {report.events} events stored):")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_MISMATCH
    if report.checkpoint_revision is None:
        print(f"verify: ok: {report.events} events replayed; no checkpoint to compare with yet")
    else:
        print(
            f"verify: ok: the replay from zero matches the checkpoint at revision "
            f"{report.checkpoint_revision} ({report.events} events stored)"
        )
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    if _target(args) is None:
        _database(args.data_dir)
    with _backend(args) as backend:
        revision = backend.manager.write_checkpoint()
        count = sum(len(backend.manager.resources_of(kind)) for kind in PERSISTED_KINDS)
    print(f"checkpoint written at revision {revision} ({count} resources)")
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    target = _target(args)
    database = _database(args.data_dir) if target is None else None
    size_before = _size_on_disk(database) if database is not None else None
    with _backend(args) as backend:
        keep = args.keep if args.keep is not None else backend.settings.checkpoints_kept
        before = backend.store.checkpoints()
        backend.store.prune_checkpoints(keep)
        kept = backend.store.checkpoints()
        backend.store.vacuum()
        if backend.target is not None:  # a PostgreSQL store
            from backend.storage.postgres import PostgresEventStore

            assert isinstance(backend.store, PostgresEventStore)
            print(f"{backend.store.name}: LEA's tables take {backend.store.size_bytes()} bytes after VACUUM")
    kept_revisions = {c.revision for c in kept}
    pruned = [c for c in before if c.revision not in kept_revisions]
    print(f"pruned {_checkpoints(pruned)}; kept {_checkpoints(kept)}")
    if database is not None:
        size_after = _size_on_disk(database)
        print(f"{database.name}: {size_before} bytes before, {size_after} bytes after; no event was deleted")
    else:
        print("no event was deleted")
    return EXIT_OK


def _checkpoints(checkpoints: Sequence[CheckpointInfo]) -> str:
    """'2 checkpoints (revisions 300, 200 (damaged))'."""
    count = f"{len(checkpoints)} checkpoint{'' if len(checkpoints) == 1 else 's'}"
    if not checkpoints:
        return count
    labels = [f"{c.revision}" + ("" if c.valid else " (damaged)") for c in checkpoints]
    return f"{count} (revision{'' if len(labels) == 1 else 's'} {', '.join(labels)})"


def _size_on_disk(database: Path) -> int:
    """The database with its write-ahead log, if one was left behind."""
    wal = database.with_name(database.name + "-wal")
    return database.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


# -- migrate -------------------------------------------------------------------------------------
def _side(text: str | None, default: Path, password_file: Path | None, option: str) -> Side:
    from backend.migrate import Side  # (psycopg: only to migrate)

    if text is not None and is_postgres_url(text):
        return Side(target=PostgresTarget.parse(text, password_file))
    if password_file is not None:
        raise UsageError(f"{option}-password-file is for a postgresql:// {option}")
    return Side(data_dir=Path(text) if text is not None else default)


def cmd_migrate(args: argparse.Namespace) -> int:
    from backend.migrate import Side, migrate

    if args.source is None and (configured := _target(args)) is not None:
        source = Side(target=configured)  # --store or lea.toml's store
    else:
        source = _side(args.source, args.data_dir, args.from_password_file, "--from")
    target = _side(args.destination, args.data_dir, args.to_password_file, "--to")
    report = migrate(source, target)
    copied = report.copied
    print(
        f"migrate: copied {copied.events} events, {copied.checkpoints} checkpoints and {copied.tokens} tokens "
        f"from {source.name} to {target.name} (revisions reserved up to {report.target.reserved})"
    )
    for side in (report.source, report.target):
        print(side.line())
        for problem in side.verify.mismatches:
            print(f"  - {problem}")
    for difference in report.differences:
        print(f"  - the copy differs: {difference}")
    if not report.ok:
        return EXIT_MISMATCH
    print(f"migrate: ok: {target.name} holds the same events, checkpoints and tokens as {source.name}")
    return EXIT_OK


# -- schema --------------------------------------------------------------------------------------
def cmd_schema(args: argparse.Namespace) -> int:
    schema: dict[str, Any]
    if args.kind is not None:
        schema = MODEL_BY_KIND[_kind(args.kind)].model_json_schema()
    else:
        schema = {
            "resource": RESOURCE_ADAPTER.json_schema(),
            "event": Event.model_json_schema(),
            "state_snapshot": StateSnapshot.model_json_schema(),
        }
    print(json.dumps(schema, indent=2))
    return EXIT_OK


# -- serve and tokens ----------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from resources.gc_policy import raise_gc_threshold

    raise_gc_threshold()  # before the server's imports too: they allocate ~70,000 objects (serve repeats it)
    from backend.server.serve import ServeOptions, serve

    setup_logging(None)  # the log file only once serve's checks passed (serve adds it)
    options = ServeOptions(
        data_dir=args.data_dir, store=args.store, store_password_file=args.store_password_file,
        host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key,
        insecure_http=args.insecure_http, insecure_no_auth=args.insecure_no_auth, demo=args.demo,
        agent_heartbeat=args.agent_heartbeat, agent_timeout=args.agent_timeout,
        demo_delay_scale=args.demo_delay_scale, child=args.child, agents_listen=args.agents_listen,
        agents_tls_cert=args.agents_tls_cert, agents_tls_key=args.agents_tls_key, standby=args.standby,
    )
    if not options.child:
        return serve(options)
    from backend.server.child import announce_failure

    try:
        return serve(options)
    except LeaError as exc:  # LEA reads the code (data_dir_locked: "LEA is already running") and the message
        announce_failure(exc)
        raise
    except Exception as exc:
        announce_failure(f"{type(exc).__name__}: {exc}")
        raise


def _host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for an IPv6 address)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 0.0.0.0:8422), not {text!r}")
    return host.strip("[]"), int(port)


@contextmanager
def _tokens(args: argparse.Namespace, *, read_only: bool = False) -> Iterator[TokenStore]:
    """The token table (no lock: works while serving). For writing, a new data directory (or a new
    PostgreSQL database) gets its tables first; for reading, the store must exist and nothing is changed."""
    directory, target = DataDir(args.data_dir), _target(args)
    if target is None:
        if read_only:
            _database(args.data_dir)
        else:
            directory.ensure()
            SqliteEventStore(directory.db_path).close()
    tokens = open_token_store(directory, target, read_only=read_only)
    try:
        yield tokens
    finally:
        tokens.close()


def cmd_token_create(args: argparse.Namespace) -> int:
    check_peer_binding(Role(args.role), args.peer_id)  # before the data directory is created
    with _tokens(args) as tokens:
        token = tokens.create(args.name, Role(args.role), args.peer_id)
    print(token)
    print(f"{PROG}: created {args.role} token '{args.name}'; it is shown only this once", file=sys.stderr)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    with _tokens(args, read_only=True) as tokens:
        rows = [(t.name, t.role.value, t.created_at, str(t.peer_id) if t.peer_id else "-") for t in tokens.list()]
    _print_table(("NAME", "ROLE", "CREATED", "PEER"), rows)
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    with _tokens(args) as tokens:
        tokens.revoke(args.name)
    print(f"{PROG}: revoked token '{args.name}'", file=sys.stderr)
    return EXIT_OK
