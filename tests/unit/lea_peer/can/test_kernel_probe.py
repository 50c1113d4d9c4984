"""The kernel CAN probe's reasons with the kernel boundary (KernelTrials) faked: each missing piece
is named with what to do, all at once; the trial link is removed where the namespace stays."""

from __future__ import annotations

import asyncio
import errno
import os

from pyroute2.netlink.exceptions import NetlinkError

from lea_peer.can.kernel_probe import KernelTrials, try_kernel_can


class FakeTrials(KernelTrials):
    def __init__(self, vcan: BaseException | None = None, sock: OSError | None = None,
                 gateway: str | None = None, hops: str | None = None) -> None:
        super().__init__(None)
        self.vcan_error, self.socket_error, self.gateway_reason, self.hops_reason = vcan, sock, gateway, hops
        self.made: list[str] = []
        self.deleted: list[str] = []
        self.bound: list[str | None] = []
        self.closed = False

    async def add_vcan(self, name: str) -> None:
        if self.vcan_error is not None:
            raise self.vcan_error
        self.made.append(name)

    async def delete(self, name: str) -> None:
        self.deleted.append(name)

    async def open_can_socket(self, interface: str | None) -> None:
        self.bound.append(interface)
        if self.socket_error is not None:
            raise self.socket_error

    async def gateway(self) -> str | None:
        return self.gateway_reason

    def hops(self) -> str | None:
        return self.hops_reason

    def close(self) -> None:
        self.closed = True


def probe(trials: FakeTrials, remove: bool = True) -> str | None:
    return asyncio.run(try_kernel_can(None, remove, trials))


def test_a_kernel_with_can_has_no_reason_and_the_trial_link_is_removed() -> None:
    trials = FakeTrials()
    assert probe(trials) is None
    assert trials.made and trials.bound == trials.made == trials.deleted  # the socket was bound to the trial vcan
    assert trials.closed


def test_in_a_scratch_namespace_the_link_goes_with_it() -> None:
    trials = FakeTrials()
    assert probe(trials, remove=False) is None
    assert trials.deleted == []


def test_this_hosts_kernel_every_reason_with_its_fix() -> None:
    af_can = OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    trials = FakeTrials(
        vcan=NetlinkError(errno.EOPNOTSUPP, "Operation not supported"), sock=af_can,
        gateway="no can-gw in this kernel (modprobe can-gw max_hops=2)",
    )
    assert probe(trials) == (
        "no vcan in this kernel (modprobe vcan); "
        "AF_CAN sockets fail: [Errno 97] Address family not supported by protocol; "
        "no can-gw in this kernel (modprobe can-gw max_hops=2)"
    )
    assert trials.bound == [None] and trials.deleted == []


def test_a_can_gw_with_one_hop_and_a_vcan_refused_for_rights() -> None:
    trials = FakeTrials(vcan=NetlinkError(errno.EPERM, "x"), hops="can-gw was loaded with max_hops=1, ...")
    assert probe(trials) == "cannot create a vcan link: Operation not permitted; can-gw was loaded with max_hops=1, ..."


def test_a_socket_that_opens_but_cannot_bind_to_the_vcan() -> None:
    trials = FakeTrials(sock=OSError(errno.ENODEV, os.strerror(errno.ENODEV)))
    assert probe(trials) == "an AF_CAN socket fails on vcan: [Errno 19] No such device"
    assert trials.deleted == trials.made
