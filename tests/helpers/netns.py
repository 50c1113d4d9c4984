"""Network namespaces for data-plane tests (root only), always deleted again.

Every name starts with ``leat<pid>-`` (this test run), so ``sweep_leftovers()`` can remove what a
killed earlier run left behind without touching anyone else's namespaces. Typical use::

    with namespaces("peer-a", "peer-b") as (a, b):
        veth(a, "u0", b, "u0", mtu=1550, address_a="10.99.0.1/24", address_b="10.99.0.2/24")

Links live and die with their namespace, so deleting the namespaces is the whole cleanup.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from pyroute2 import IPRoute, netns

PREFIX = f"leat{os.getpid()}-"
_OURS = re.compile(r"^leat(?P<pid>\d+)-")


def namespaces_supported() -> str | None:
    """None when this process can create namespaces, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"{PREFIX}probe"
    try:
        netns.create(name)
    except OSError as exc:
        return f"cannot create a network namespace: {exc}"
    remove(name)
    return None


def remove(name: str) -> None:
    with contextlib.suppress(OSError):
        netns.remove(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_leftovers() -> list[str]:
    """Remove ``leat<pid>-`` namespaces of test runs that are no longer running; the names removed."""
    removed = []
    for name in netns.listnetns():
        match = _OURS.match(name)
        if match and (int(match["pid"]) == os.getpid() or not _alive(int(match["pid"]))):
            remove(name)
            removed.append(name)
    return removed


@contextlib.contextmanager
def namespaces(*suffixes: str) -> Iterator[tuple[str, ...]]:
    """Create ``PREFIX + suffix`` for each suffix (loopback up); delete them all on exit."""
    names = tuple(PREFIX + s for s in suffixes)
    created: list[str] = []
    try:
        for name in names:
            netns.create(name)
            created.append(name)
            with IPRoute(netns=name, flags=0) as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        yield names
    finally:
        for name in created:
            remove(name)


def _configure(ns: str, ifname: str, mtu: int | None, address: str | None) -> None:
    with IPRoute(netns=ns, flags=0) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        if mtu:
            ipr.link("set", index=index, mtu=mtu)
        if address:
            ip, prefix = address.split("/")
            ipr.addr("add", index=index, address=ip, prefixlen=int(prefix))
        ipr.link("set", index=index, state="up")


def veth(
    ns_a: str,
    name_a: str,
    ns_b: str,
    name_b: str,
    *,
    mtu: int | None = None,
    address_a: str | None = None,
    address_b: str | None = None,
) -> None:
    """A veth pair from ``ns_a``/``name_a`` to ``ns_b``/``name_b``, both ends up (optional MTU and
    addresses in CIDR notation)."""
    fd = os.open(f"/var/run/netns/{ns_b}", os.O_RDONLY)
    try:
        with IPRoute(netns=ns_a, flags=0) as ipr:
            ipr.link("add", ifname=name_a, kind="veth", peer={"ifname": name_b, "net_ns_fd": fd})
    finally:
        os.close(fd)
    _configure(ns_a, name_a, mtu, address_a)
    _configure(ns_b, name_b, mtu, address_b)


def links(ns: str) -> dict[str, str]:
    """``{ifname: ifalias}`` of every link in ``ns`` (alias "" when unset)."""
    with IPRoute(netns=ns, flags=0) as ipr:
        return {str(m.get("IFLA_IFNAME")): str(m.get("IFLA_IFALIAS") or "") for m in ipr.link("dump")}


def delete_link(ns: str, name: str) -> None:
    """Delete ``name`` in ``ns`` (behind a data plane's back); call it off the event loop."""
    with IPRoute(netns=ns, flags=0) as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=name)[0])
