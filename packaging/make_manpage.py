"""Write a man page (roff, gzipped) for a command from its argparse parser, at build time.

    python packaging/make_manpage.py lea_app.main:build_parser lea 1 OUT.1.gz [VERSION]

The page's NAME, SYNOPSIS, DESCRIPTION, OPTIONS and COMMANDS (each subcommand with its options)
come from the parser itself: the page says what ``--help`` says. Run it from the project root (or
with the sources on PYTHONPATH). Deterministic: the date is SOURCE_DATE_EPOCH's (else today) and
the gzip header carries no time stamp, so two builds of the same sources give the same file. A
default under the building user's home (the data directory) is written as ``~/...``.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import importlib
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path


def escape(text: str) -> str:
    """Roff-escape one line of text: backslashes, hyphens, and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def paragraphs(text: str | None) -> list[str]:
    lines = [" ".join(part.split()) for part in (text or "").split("\n\n")]
    return [escape(line) for line in lines if line]


def option_label(action: argparse.Action) -> str:
    """``\\fB\\-\\-port\\fR \\fIPORT\\fR`` for an option, ``\\fIKIND\\fR`` for a positional."""
    metavar = action.metavar if isinstance(action.metavar, str) else None
    if not action.option_strings:
        return f"\\fI{escape(metavar or action.dest.upper())}\\fR"
    names = ", ".join(f"\\fB{escape(name)}\\fR" for name in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices is not None and metavar is None:
        value = "{" + ",".join(str(choice) for choice in action.choices) + "}"
    else:
        value = metavar or action.dest.upper()
    return f"{names} \\fI{escape(value)}\\fR"


def options(actions: Iterable[argparse.Action]) -> list[str]:
    out: list[str] = []
    for action in actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        out += [".TP", option_label(action), escape(" ".join((action.help or "").split()) or "(no description)")]
    return out


def subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{prefix} {name}"
            out += [".SS " + escape(full), escape(" ".join(sub.format_usage().split()[1:]))]
            out += [".PP", *paragraphs(helps.get(name) or sub.description)]
            out += options(action for action in sub._actions if not isinstance(action, argparse._HelpAction))
            out += subcommands(sub, full)
    return out


def manpage(parser: argparse.ArgumentParser, name: str, section: str, version: str, date: str) -> str:
    summary = " ".join((parser.description or name).split())
    lines = [
        f'.TH {name.upper()} {section} "{date}" "{escape(name)} {escape(version)}" "User Commands"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary.rstrip('.'))}",
        ".SH SYNOPSIS",
        escape(" ".join(parser.format_usage().split()[1:])),
        ".SH DESCRIPTION",
        *paragraphs(parser.description),
        *(paragraphs(parser.epilog) if parser.epilog else []),
        ".SH OPTIONS",
        *options(parser._actions),
    ]
    commands = subcommands(parser, name)
    if commands:
        lines += [".SH COMMANDS", *commands]
    lines += [".SH SEE ALSO", f"\\fB{escape(name)} \\-\\-help\\fR; /usr/share/doc/ of the package."]
    return "\n".join(lines) + "\n"


def load(spec: str) -> Callable[[], argparse.ArgumentParser]:
    module, _, attr = spec.partition(":")
    builder = getattr(importlib.import_module(module), attr)
    if not callable(builder):
        raise SystemExit(f"make_manpage: {spec} is not a function")
    return builder  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    if len(argv) not in (5, 6):
        print("usage: make_manpage.py MODULE:FUNCTION NAME SECTION OUT.gz [VERSION]", file=sys.stderr)
        return 2
    spec, name, section, out = argv[1:5]
    parser = load(spec)()
    version = argv[5] if len(argv) == 6 else ""
    for action in parser._actions:
        if not version and isinstance(action, argparse._VersionAction) and action.version:
            version = action.version.split()[-1]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or datetime.datetime.now(datetime.UTC).timestamp())
    date = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d")
    text = manpage(parser, name, section, version, date)
    home = str(Path.home())
    if home != "/":  # defaults computed from the build machine's home (a data directory) read as ~
        text = text.replace(escape(home), "~")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as gz:
        gz.write(text.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
