"""``--config FILE``: a command's long options written in a TOML file (the packages' /etc/lea/*.toml).

Each top-level key is the name of a long option of the command, without the dashes
(``port = 8421`` is ``--port 8421``; ``tls-cert`` and ``tls_cert`` are the same key): a string or
number is the option's value, ``true`` a flag that takes none (``false``: leave it out), a list an
option given once per item. The options are checked and converted by the command line parser
itself, so a value is refused exactly as on the command line. The options of the file come first:
what the command line says after them wins.

An unknown key, a value of the wrong kind, or a file that is not TOML is a ``ConfigError`` naming
the file and the key.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Sequence
from pathlib import Path


class ConfigError(Exception):
    pass


def option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's long options by name without the dashes (``--tls-cert``: ``tls-cert``)."""
    found: dict[str, argparse.Action] = {}
    for action in parser._actions:
        for name in action.option_strings:
            if name.startswith("--") and name not in ("--help", "--config"):
                found[name[2:]] = action
    return found


def config_arguments(path: Path, parser: argparse.ArgumentParser) -> list[str]:
    """The command-line arguments the TOML file ``path`` stands for, for ``parser``'s options."""
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not a TOML file ({exc})") from None
    actions = option_actions(parser)
    argv: list[str] = []
    for key, value in values.items():
        name = key.replace("_", "-")
        action = actions.get(name)
        if action is None:
            known = ", ".join(sorted(actions))
            raise ConfigError(f"--config {path}: unknown key {key!r} (the keys are the options: {known})")
        option = f"--{name}"
        if action.nargs == 0:
            if not isinstance(value, bool):
                raise ConfigError(f"--config {path}: {key} is a switch: true or false, not {value!r}")
            argv += [option] if value else []
            continue
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not isinstance(action, argparse._AppendAction):
            raise ConfigError(f"--config {path}: {key} takes one value, not a list")
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise ConfigError(f"--config {path}: {key} must be a string or a number, not {item!r}")
            argv += [option, str(item)]
    return argv


def with_config(argv: Sequence[str], command: str, parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with the options of its ``--config FILE`` (given after ``command``) put right after
    ``command``: the file's values first, the command line's after them (they win)."""
    args = list(argv)
    if command not in args:
        return args
    at = args.index(command) + 1
    rest = args[at:]
    path: str | None = None
    kept: list[str] = []
    index = 0
    while index < len(rest):
        word = rest[index]
        if word == "--config" and index + 1 < len(rest):
            path, index = rest[index + 1], index + 2
            continue
        if word.startswith("--config="):
            path, index = word.partition("=")[2], index + 1
            continue
        kept.append(word)
        index += 1
    if path is None:
        return args
    return [*args[:at], *config_arguments(Path(path), parser), *kept]


def subcommand_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of subcommand ``name`` of ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise KeyError(name)
