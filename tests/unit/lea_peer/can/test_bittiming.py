"""CAN bit timing: DeviceInterface values checked, the netlink attributes encoded by pyroute2 into
IFLA_LINKINFO/IFLA_INFO_DATA exactly as <linux/can/netlink.h> lays them out, tolerances."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from pyroute2.iproute.linux import get_arguments_processor
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from lea_peer.can.bittiming import BitTiming, current_timing, link_attributes, mismatch, wanted_timing

IFLA_LINKINFO, IFLA_INFO_DATA = 18, 2
IFLA_CAN_BITTIMING, IFLA_CAN_CTRLMODE, IFLA_CAN_DATA_BITTIMING = 1, 5, 9
CAN_CTRLMODE_FD = 0x20


def _encoded_info_data(timing: BitTiming) -> dict[int, bytes]:
    """The IFLA_INFO_DATA attributes of the RTM_NEWLINK pyroute2 sends for ``link_attributes``."""
    arguments = get_arguments_processor("link", "set", {"index": 7, **link_attributes(timing)})
    msg = ifinfmsg()
    for key, value in arguments.items():
        if key in ("index", "flags", "change"):
            msg[key] = value
        else:
            msg["attrs"].append((key, value))
    msg.encode()
    raw = bytes(msg.data)

    def attrs(data: bytes) -> dict[int, bytes]:
        out, offset = {}, 0
        while offset + 4 <= len(data):
            length, kind = struct.unpack_from("=HH", data, offset)
            out[kind & 0x3FFF] = data[offset + 4 : offset + length]
            offset += (length + 3) & ~3
        return out

    linkinfo = attrs(raw[16 + 16 :])[IFLA_LINKINFO]  # after nlmsghdr and struct ifinfomsg
    return attrs(attrs(linkinfo)[IFLA_INFO_DATA])


def test_fd_timing_is_ctrlmode_fd_and_two_struct_can_bittimings() -> None:
    data = _encoded_info_data(BitTiming(500000, 875, True, 2000000, 750))
    # struct can_bittiming: bitrate, sample_point, tq, prop_seg, phase_seg1, phase_seg2, sjw, brp (u32 each)
    assert data[IFLA_CAN_BITTIMING] == struct.pack("=8I", 500000, 875, 0, 0, 0, 0, 0, 0)
    assert data[IFLA_CAN_DATA_BITTIMING] == struct.pack("=8I", 2000000, 750, 0, 0, 0, 0, 0, 0)
    assert data[IFLA_CAN_CTRLMODE] == struct.pack("=II", CAN_CTRLMODE_FD, CAN_CTRLMODE_FD)  # mask, flags


def test_classic_timing_switches_fd_off_and_sends_no_data_phase() -> None:
    data = _encoded_info_data(BitTiming(250000, 800))
    assert data[IFLA_CAN_CTRLMODE] == struct.pack("=II", CAN_CTRLMODE_FD, 0)
    assert IFLA_CAN_DATA_BITTIMING not in data


def test_values_from_the_parameter_table() -> None:
    value: dict[str, Any] = {"interface": "can0", "can": "can", "bitrate": 500000, "sample_point": 875, "fd": False}
    assert wanted_timing(value) == BitTiming(500000, 875)
    fd = {**value, "fd": True, "data_bitrate": 2000000, "data_sample_point": 750}
    assert wanted_timing(fd) == BitTiming(500000, 875, True, 2000000, 750)
    assert wanted_timing({**value, "data_bitrate": 5, "data_sample_point": 1}) == BitTiming(500000, 875)


@pytest.mark.parametrize(("change", "problem"), [
    ({"bitrate": 2_000_000}, "bitrate 2000000 is not from 1 to 1000000 bit/s"),
    ({"bitrate": "fast"}, "bitrate 'fast' is not a whole number"),
    ({"sample_point": 1000}, "sample_point 1000 is not in tenths of a percent (0 to 999)"),
    ({"fd": True}, "a CAN FD data bitrate from 1 to 16000000 bit/s is needed, not 0"),
    ({"fd": "yes"}, "fd 'yes' is not true or false"),
])
def test_bad_values_are_named(change: dict[str, Any], problem: str) -> None:
    value = {"interface": "can0", "can": "can", "bitrate": 500000, "sample_point": 875, "fd": False, **change}
    assert wanted_timing(value) == f"CAN interface can0: {problem}"


def test_what_the_kernel_reports_and_the_tolerances() -> None:
    info = {
        "BITTIMING": {"bitrate": 499000, "sample_point": 870, "tq": 125},
        "CTRLMODE": {"fd": "on"}, "DATA_BITTIMING": {"bitrate": 2000000, "sample_point": 700},
    }
    current = current_timing(info)
    assert current == BitTiming(499000, 870, True, 2000000, 700)
    assert current_timing({"BITTIMING": {"bitrate": 0}}) is None
    assert mismatch(current, BitTiming(500000, 875, True, 2000000, 710)) is None  # 0.2 %, 0.5 and 1 point: roundings
    assert mismatch(current, BitTiming(500000, 875, True, 2000000, 750)) == (
        "its data sample point is 70.0 %, not 75.0 %"
    )
    assert mismatch(current, BitTiming(500000, 800, True, 2000000, 750)) == "its sample point is 87.0 %, not 80.0 %"
    assert mismatch(current, BitTiming(500000, 875)) == "CAN FD is on"
    assert mismatch(current, BitTiming(500000, 875, True, 5000000, 750)) == (
        "its data phase runs at 2000000 bit/s, not 5000000"
    )
    assert mismatch(None, BitTiming(500000)) == "it has no bit timing yet"
    assert mismatch(BitTiming(500000, 875), BitTiming(500000, 0)) is None  # 0: the kernel's choice
