"""PeerDescriptor: a test bench with its network interfaces and the devices behind them."""

from __future__ import annotations

from typing import Annotated, Literal, NoReturn
from uuid import UUID

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from resources.base import Model, ResourceBase
from resources.kinds import ResourceKind
from resources.names import Description, DeviceName, InterfaceName, Location, ResourceName, Tag

DEFAULT_BRIDGE_NAME = "br-lea"
#: Largest bitrate (bit/s): the kernel's ``struct can_bittiming`` holds it in 32 bits.
MAX_BITRATE = 2**32 - 1


class EthernetConfiguration(Model):
    type: Literal["ethernet"] = "ethernet"


class VcanConfiguration(Model):
    type: Literal["vcan"] = "vcan"


class CanConfiguration(Model):
    type: Literal["can"] = "can"
    bitrate: int = Field(gt=0, le=MAX_BITRATE, description="Nominal bitrate in bit/s.")
    sample_point: float = Field(gt=0.0, le=1.0)
    fd: bool = False
    data_bitrate: int | None = Field(default=None, gt=0, le=MAX_BITRATE)
    data_sample_point: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _fd_fields_only_with_fd(self) -> CanConfiguration:
        if self.fd:
            if self.data_bitrate is None or self.data_sample_point is None:
                raise ValueError("CAN FD needs data_bitrate and data_sample_point")
        elif self.data_bitrate is not None or self.data_sample_point is not None:
            raise ValueError("data_bitrate and data_sample_point are only allowed when fd is true")
        return self


InterfaceConfiguration = Annotated[
    EthernetConfiguration | VcanConfiguration | CanConfiguration, Field(discriminator="type")
]


class NetworkInterface(Model):
    id: UUID
    name: InterfaceName
    configuration: InterfaceConfiguration

    @property
    def is_can(self) -> bool:
        return self.configuration.type in ("can", "vcan")


class Device(Model):
    id: UUID
    name: DeviceName
    description: Description = ""
    interface: UUID = Field(description="Id of the peer's network interface the device is attached to.")
    tags: tuple[Tag, ...] = ()


def _refuse(loc: tuple[str | int, ...], value: object, rule: str) -> NoReturn:
    """Fail validation at the offending field (so the error names it), not at the whole peer."""
    raise ValidationError.from_exception_data(
        "PeerDescriptor",
        [
            InitErrorDetails(
                type=PydanticCustomError("peer_consistency", "{rule}", {"rule": rule}), loc=loc, input=value
            )
        ],
    )


class PeerDescriptor(ResourceBase):
    kind: Literal[ResourceKind.PEER] = ResourceKind.PEER
    name: ResourceName
    location: Location | None = None
    demo: bool = Field(default=False, description="True for simulated demo peers.")
    interfaces: tuple[NetworkInterface, ...] = ()
    bridge_name: InterfaceName | None = None
    devices: tuple[Device, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> PeerDescriptor:
        # The common case in one pass of set comprehensions (every restore, snapshot and event
        # validates each peer; UUID's own __hash__ is Python code, its .int is not); the loop below
        # only runs to name the first offending field.
        interfaces, devices = self.interfaces, self.devices
        iface_ints = {iface.id.int for iface in interfaces}
        if (
            len(iface_ints) == len(interfaces)
            and len({iface.name for iface in interfaces}) == len(interfaces)
            and len({device.id.int for device in devices}) == len(devices)
            and len({device.name for device in devices}) == len(devices)
            and all(device.interface.int in iface_ints for device in devices)
        ):
            return self
        iface_ids: set[UUID] = set()
        iface_names: set[str] = set()
        for i, iface in enumerate(self.interfaces):
            if iface.id in iface_ids:
                _refuse(
                    ("interfaces", i, "id"), iface.id,
                    f"must be unique within the peer ({iface.id} is used twice)",
                )
            if iface.name in iface_names:
                _refuse(
                    ("interfaces", i, "name"), iface.name,
                    f"must be unique within the peer ('{iface.name}' is used twice)",
                )
            iface_ids.add(iface.id)
            iface_names.add(iface.name)
        device_ids: set[UUID] = set()
        device_names: set[str] = set()
        for i, device in enumerate(self.devices):
            if device.id in device_ids:
                _refuse(
                    ("devices", i, "id"), device.id,
                    f"must be unique within the peer ({device.id} is used twice)",
                )
            if device.name in device_names:
                _refuse(
                    ("devices", i, "name"), device.name,
                    f"must be unique within the peer (device name '{device.name}' is used twice)",
                )
            if device.interface not in iface_ids:
                _refuse(
                    ("devices", i, "interface"), device.interface,
                    f"must be one of the peer's interfaces (device '{device.name}' is attached to interface "
                    f"{device.interface}, which this peer does not have)",
                )
            device_ids.add(device.id)
            device_names.add(device.name)
        return self

    @property
    def effective_bridge_name(self) -> str:
        return self.bridge_name or DEFAULT_BRIDGE_NAME

    def interface(self, interface_id: UUID) -> NetworkInterface | None:
        for iface in self.interfaces:
            if iface.id == interface_id:
                return iface
        return None

    def device(self, device_id: UUID) -> Device | None:
        for device in self.devices:
            if device.id == device_id:
                return device
        return None
