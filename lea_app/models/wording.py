"""Backend messages as a dialog says them, Qt-free: sentence case, a full stop, and no command-line
advice (a dialog's reader clicked an icon; "use another --data-dir" is advice for a terminal)."""

from __future__ import annotations

import re

#: "...; close it first or use another --data-dir" -> what a user of the window can do.
_LOCKED_ADVICE = re.compile(r";\s*close it first or use another --data-dir\s*$")
#: Any other clause that tells the reader to type an option ("...; use --force", "..., or pass --x").
_OPTION_CLAUSE = re.compile(r"[;,]\s*(?:or\s+)?(?:use|pass|run with|start with|try)\b[^;]*?\s--[a-z][a-z-]*[^;]*")


def for_dialog(text: str) -> str:
    """``text`` for a dialog: no command-line options to type, sentence case, ending in a full stop."""
    plain = _LOCKED_ADVICE.sub("; close the other LEA window first, then start LEA again", text.strip())
    plain = _OPTION_CLAUSE.sub("", plain).strip()
    if not plain:
        return text
    plain = plain[:1].upper() + plain[1:]
    return plain if plain.endswith((".", "!", "?")) else plain + "."
