"""Where a PostgreSQL store is, without psycopg: a URL, its password file, and their checks.

psycopg (and libpq with it) is imported only when a PostgreSQL store is actually used: it cost the
embedded backend's child ~0.2 s of its start-up on SQLite (`python -X importtime`), and LEA's
first paint waits for that child.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from resources.errors import DataDirError

SYNCHRONOUS_COMMIT = {"full": "on", "normal": "local", "off": "off"}
URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(text: str | Path | None) -> bool:
    return isinstance(text, str) and text.startswith(URL_SCHEMES)


@dataclass(frozen=True)
class PostgresTarget:
    """Where a PostgreSQL store is: a URL without a password, and where the password comes from.

    The password is never on the command line (every user of the machine can read it there): libpq
    takes it from ``PGPASSWORD``, from ``~/.pgpass`` / ``PGPASSFILE``, or from ``password_file``
    (libpq's passfile format, ``host:port:database:user:password``, or a file holding only the
    password).
    """

    url: str
    password_file: Path | None = None

    @classmethod
    def parse(cls, url: str, password_file: Path | str | None = None) -> PostgresTarget:
        if not is_postgres_url(url):
            raise DataDirError(f"{url[:80]!r} is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DATABASE)")
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise DataDirError(f"{redact(url)} is not a valid PostgreSQL URL: {exc}") from None
        if "password" in params:
            raise DataDirError(
                f"{redact(url)} holds a password: give it in PGPASSWORD, ~/.pgpass or --store-password-file "
                "(store_password_file in lea.toml), never on the command line, where every user of the "
                "machine can read it"
            )
        if not params.get("dbname"):
            raise DataDirError(f"{url} names no database: postgresql://USER@HOST:PORT/DATABASE")
        file = Path(password_file) if password_file is not None else None
        if file is not None and not file.is_file():
            raise DataDirError(f"the PostgreSQL password file {file} does not exist", path=str(file))
        return cls(url, file)

    @property
    def database(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(self.url).get("dbname", ""))

    def conninfo(self, **extra: Any) -> str:
        params: dict[str, Any] = {"application_name": "lea-backend", "connect_timeout": 10}
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise DataDirError(
                    f"cannot read the PostgreSQL password file {self.password_file}: {exc}",
                    path=str(self.password_file),
                ) from exc
            first = (text.strip().splitlines() or [""])[0]
            if first.count(":") >= 4:  # libpq's passfile: host:port:database:user:password lines
                params["passfile"] = str(self.password_file)
            elif first:  # the password alone
                params["password"] = first
        params.update(extra)
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.url, **params)

    def __str__(self) -> str:
        return self.url


def redact(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the PostgreSQL URL"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        "password=***" if item.lower().startswith("password=") else item for item in parts.query.split("&")
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def connect_error(target: PostgresTarget, exc: Exception) -> DataDirError:
    reason = " ".join(str(exc).split()) or type(exc).__name__  # libpq's lines, on one line
    return DataDirError(f"cannot use the PostgreSQL database {target.url}: {reason}", path=target.url)
