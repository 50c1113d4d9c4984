"""What the Set up bench dialog shows a test engineer to copy (Qt-free).

The ``lea-peer run`` command, the commands that write the token file, and a systemd unit (the shape
of packaging/lea-peer.service: the token file handed over by ``LoadCredential``, ``ExecStart`` of
``lea-peer run``), all for one bench: its peer id, the backend's agent URL and the token's name.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from uuid import UUID

#: Where a bench keeps its token files (one per token name).
TOKEN_DIR = "/etc/lea-peer"
#: The option that makes the embedded backend accept agents (issue #11).
ENABLE_AGENTS = "lea --agents-listen HOST:PORT"
#: The backend's token name rule (backend/tokens.py TOKEN_NAME_PATTERN), checked before asking.
TOKEN_NAME = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,63}$")
TOKEN_NAME_RULE = "1 to 64 letters, digits, '.', '_', '-' or '@', not starting with '.'"


def token_path(name: str) -> str:
    return f"{TOKEN_DIR}/{name}.token"


def token_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a bench token (it also names the token file), or None."""
    if not name:
        return "Give the token a name (it names the token file on the bench)."
    if not TOKEN_NAME.match(name):
        return f"A token name is {TOKEN_NAME_RULE}."
    return None


def suggested_token_name(peer_name: str, taken: Iterable[str]) -> str:
    """The peer's name, or the first ``<name>-N`` no token has yet (peer names are valid token names)."""
    used = set(taken)
    if peer_name not in used:
        return peer_name
    n = 2
    while f"{peer_name}-{n}" in used:
        n += 1
    return f"{peer_name}-{n}"


def run_arguments(agent_url: str, peer_id: UUID, token_file: str) -> list[str]:
    return ["lea-peer", "run", "--backend", agent_url, "--peer-id", str(peer_id), "--token-file", token_file]


def continued(arguments: list[str], indent: str = "  ") -> str:
    """A command on several lines, one option and its value a line, joined by backslash-newline
    (what both a shell and a systemd ExecStart read as one line)."""
    words = [shlex.quote(a) for a in arguments]
    lines = [" ".join(words[:2])]
    rest = words[2:]
    while rest:
        take = 2 if rest[0].startswith("--") and len(rest) > 1 and not rest[1].startswith("--") else 1
        lines.append(indent + " ".join(rest[:take]))
        rest = rest[take:]
    return " \\\n".join(lines)


def joined(text: str) -> str:
    """``text`` with its backslash-newline continuations joined (as a shell reads it)."""
    return re.sub(r" *\\\n *", " ", text)


def run_command(agent_url: str, peer_id: UUID, name: str) -> str:
    """The exact command a bench runs (as root, or with CAP_NET_ADMIN), on one line."""
    return shlex.join(run_arguments(agent_url, peer_id, token_path(name)))


def run_command_lines(agent_url: str, peer_id: UUID, name: str) -> str:
    """``run_command`` to read and copy: one option a line."""
    return continued(run_arguments(agent_url, peer_id, token_path(name)))


def token_file_commands(name: str, token: str) -> str:
    """Shell lines that write the token file readable by root only (never world-readable, not even briefly)."""
    return "\n".join((
        f"sudo install -d -m 0700 {shlex.quote(TOKEN_DIR)}",
        f"printf '%s\\n' {shlex.quote(token)} \\",
        f"  | sudo install -m 0600 /dev/stdin {shlex.quote(token_path(name))}",
    ))


#: The packaged unit's (packaging/lea-peer.service) directives that do not depend on the bench: the
#: unit LEA shows is that unit with the bench's values written in (tests/packaging compares them).
PACKAGED_SERVICE = (
    "Restart=on-failure",
    "RestartSec=5",
    "RestartPreventExitStatus=2",  # 2: retrying cannot help (token revoked, peer deleted, replaced)
    "KillSignal=SIGTERM",
    "TimeoutStopSec=15",
    "",
    "DynamicUser=yes",
    "User=lea-peer",
    "CapabilityBoundingSet=CAP_NET_ADMIN",
    "AmbientCapabilities=CAP_NET_ADMIN",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "DevicePolicy=closed",
    "DeviceAllow=/dev/net/tun rw",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_CAN",
    "SystemCallArchitectures=native",
)
#: Where systemd hands the service its token (LoadCredential=token:...), as the packaged unit reads it.
CREDENTIAL_FILE = "${CREDENTIALS_DIRECTORY}/token"


def systemd_unit(agent_url: str, peer_id: UUID, name: str, peer_name: str) -> str:
    """/etc/systemd/system/lea-peer.service for this bench: the packaged unit with the backend, the
    peer id and the token file written in (instead of its /etc/lea/peer.toml and peer.token)."""
    # The credential path is systemd's to expand: it must not be shell-quoted.
    exec_start = continued(run_arguments(agent_url, peer_id, "CREDENTIAL"), indent="    ")
    exec_start = exec_start.replace("CREDENTIAL", CREDENTIAL_FILE)
    return "\n".join((
        "[Unit]",
        f"Description=LEA test-bench agent (lea-peer) for bench {peer_name}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        f"LoadCredential=token:{token_path(name)}",
        f"ExecStart=/usr/bin/{exec_start}",
        *PACKAGED_SERVICE,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ))


SYSTEMD_STEPS = "sudo systemctl daemon-reload && sudo systemctl enable --now lea-peer.service"
