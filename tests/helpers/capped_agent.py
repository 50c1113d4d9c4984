"""The data plane run as ``packaging/lea-peer.service`` runs it: an unprivileged user whose only
capability is CAP_NET_ADMIN, in the namespace it configures (no ``--netns``).

``capped_command(ns, tun_node, "apply")`` is the command line for a test to start:
``ip netns exec NS setpriv --reuid=65534 ... python -m tests.helpers.capped_agent apply``. Two
things of this machine are not as on a bench, and the command mends them inside the private mount
namespace ``ip netns exec`` makes (nothing outside it changes):

- ``/dev/net/tun`` is 0600 here; udev makes it 0666 on a bench (and systemd's ``DeviceAllow=``
  keeps it so). A 0666 node of the same device (``make_tun_node``) is bind-mounted over it.
- The venv's interpreter may live where user nobody cannot enter (``/root``): then a system
  interpreter of the same minor version runs with the venv's site-packages on ``PYTHONPATH``.

The module itself (``python -m tests.helpers.capped_agent``):

- ``apply``: reads one JSON line ``{"peer", "cluster", "underlay", "parameters"}`` from stdin,
  applies the parameters in order, checks each again, prints one JSON line ``{"pid", "status"
  (the /proc/self/status Cap* lines), "applied", "checked"}`` (statuses by parameter id). Then it
  waits for a line on stdin (its responders keep answering meanwhile), applies the parameters
  Absent in reverse order, prints ``{"removed": ...}`` and exits.
- ``probe UNDERLAY``: prints ``{"pid", "status", "capabilities"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import stat
import sys
import sysconfig
from pathlib import Path
from typing import Any
from uuid import UUID

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
CAP_NET_ADMIN = 12
TUN_DEVICE = os.makedev(10, 200)  # /dev/net/tun, fixed by the kernel (Documentation/admin-guide/devices.txt)
SETPRIV = [
    "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
    "--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin",
]


def _nobody_may_run(path: str) -> bool:
    """Whether a process of user nobody (neither owner nor group) reaches and executes ``path``."""
    real = Path(os.path.realpath(path))
    for directory in real.parents:
        if not os.stat(directory).st_mode & stat.S_IXOTH:
            return False
    return real.exists() and bool(os.stat(real).st_mode & stat.S_IXOTH)


def interpreter_for_nobody() -> tuple[str, str] | None:
    """(interpreter, PYTHONPATH) that user nobody can run with this venv's packages, or None."""
    if _nobody_may_run(sys.executable):
        return sys.executable, str(REPO)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"  # same ABI for compiled packages
    for candidate in (f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if os.path.exists(candidate) and _nobody_may_run(candidate):
            return candidate, os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"]])
    return None


def tun_needs_a_node() -> bool:
    """True when /dev/net/tun is not open to every user (this machine; not a bench)."""
    mode = os.stat("/dev/net/tun").st_mode
    return (mode & 0o006) != 0o006


def make_tun_node(directory: Path) -> Path:
    """A 0666 character device node of /dev/net/tun in ``directory`` (root only)."""
    node = directory / "tun"
    os.mknod(node, stat.S_IFCHR | 0o666, TUN_DEVICE)
    os.chmod(node, 0o666)  # mknod's mode is filtered by the umask
    return node


def capped_command(ns: str, tun_node: Path | None, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command (and its environment) that runs this module with ``args`` in ``ns`` as user
    nobody with CAP_NET_ADMIN only."""
    found = interpreter_for_nobody()
    if found is None:
        raise RuntimeError("no Python interpreter that user nobody may run")
    python, path = found
    inner = shlex.join([*SETPRIV, python, "-m", "tests.helpers.capped_agent", *args])
    mount = f"mount --bind {shlex.quote(str(tun_node))} /dev/net/tun && " if tun_node else ""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONPATH": path,
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"}
    return ["ip", "netns", "exec", ns, "sh", "-c", f"{mount}exec {inner}"], env


def capability_lines() -> dict[str, str]:
    """The Cap* lines of /proc/self/status: {"CapEff": "0000000000001000", ...}."""
    with open("/proc/self/status") as status:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in status) if k.startswith("Cap")}


def _emit(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


async def _apply(document: dict[str, Any]) -> None:
    from lea_peer.dataplane.netlink import NetlinkDataPlane
    from resources.configuration import Parameter, Target

    cluster = UUID(document["cluster"])
    params = [Parameter.model_validate(p) for p in document["parameters"]]
    plane = NetlinkDataPlane(UUID(document["peer"]), None, document["underlay"])
    try:
        applied = {str(p.id): (await plane.apply(cluster, p)).model_dump(mode="json") for p in params}
        checked = {str(p.id): (await plane.check(cluster, p)).model_dump(mode="json") for p in params}
        _emit({"pid": os.getpid(), "status": capability_lines(), "applied": applied, "checked": checked})
        await asyncio.to_thread(sys.stdin.readline)
        removed = {}
        for p in reversed(params):
            absent = p.model_copy(update={"target": Target.ABSENT})
            removed[str(p.id)] = (await plane.apply(cluster, absent)).model_dump(mode="json")
        _emit({"removed": removed})
    finally:
        await plane.close()


async def _probe(underlay: str) -> None:
    from lea_peer.probe import probe_capabilities

    capabilities = await probe_capabilities(None, underlay)
    _emit({"pid": os.getpid(), "status": capability_lines(), "capabilities": capabilities.model_dump(mode="json")})


def main(argv: list[str]) -> int:
    if argv[:1] == ["apply"]:
        asyncio.run(_apply(json.loads(sys.stdin.readline())))
        return 0
    if argv[:1] == ["probe"] and len(argv) == 2:
        asyncio.run(_probe(argv[1]))
        return 0
    print("usage: python -m tests.helpers.capped_agent apply | probe UNDERLAY", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
