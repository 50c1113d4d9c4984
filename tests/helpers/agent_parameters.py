"""Small, realistic peer configurations for agent tests (the parameter table of DESIGN section 6)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from uuid import UUID

from resources.configuration import Parameter, ParameterKind, PeerConfiguration, Target

CLUSTER = UUID("00000000-0000-4000-8000-00000000c1c1")
PEER = UUID("00000000-0000-4000-8000-0000000000a1")


@dataclass(frozen=True)
class MemberParameters:
    device: Parameter
    bridge: Parameter
    tunnel: Parameter
    join_device: Parameter
    join_tunnel: Parameter
    check: Parameter

    @property
    def all(self) -> tuple[Parameter, ...]:
        return (self.device, self.bridge, self.tunnel, self.join_device, self.join_tunnel, self.check)


def member_parameters(
    target: Target = Target.PRESENT, cluster: UUID = CLUSTER, interface: str = "eth1", bridge: str = "br-lea"
) -> MemberParameters:
    """A leader's parameters for one remote member: ids derived like the backend's (stable)."""

    def pid(key: str) -> UUID:
        return uuid.uuid5(cluster, f"{PEER}/{key}")

    device = Parameter(
        id=pid(f"device/{interface}"), kind=ParameterKind.DEVICE_INTERFACE, target=target,
        value={"interface": interface},
    )
    br = Parameter(
        id=pid(f"bridge/{bridge}"), kind=ParameterKind.ETHERNET_BRIDGE, target=target, value={"name": bridge}
    )
    tunnel = Parameter(
        id=pid("gre"), kind=ParameterKind.GRE_INTERFACE, target=target, dependencies=(br.id,),
        value={"name": "gre-0123456789a", "local": "10.0.0.1", "remote": "10.0.0.2", "encapsulation": "vxlan",
               "vni": 4711, "mtu": 1450},
    )
    join_device = Parameter(
        id=pid(f"join/device/{interface}/{bridge}"), kind=ParameterKind.INTERFACE_JOIN, target=target,
        dependencies=(device.id, br.id),
        value={"interface": interface, "bridge": bridge},
    )
    join_tunnel = Parameter(
        id=pid(f"join/gre/{bridge}"), kind=ParameterKind.INTERFACE_JOIN, target=target, dependencies=(tunnel.id, br.id),
        value={"interface": "gre-0123456789a", "bridge": bridge},
    )
    check = Parameter(
        id=pid("check"), kind=ParameterKind.REMOTE_PEER_CHECK, target=target, dependencies=(tunnel.id,),
        value={"remote": "10.0.0.2"},
    )
    return MemberParameters(device, br, tunnel, join_device, join_tunnel, check)


def configuration(
    target: Target = Target.PRESENT, cluster: UUID = CLUSTER, **kwargs: str
) -> PeerConfiguration:
    """The whole configuration; parameters listed in reverse so that ordering is the agent's job."""
    params = member_parameters(target, cluster, **kwargs).all
    return PeerConfiguration(id=PEER, cluster=cluster, parameters=tuple(reversed(params)))
