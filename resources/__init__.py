"""The shared contract between backend and LEA: resources, events, snapshots, errors.

Imports nothing from ``backend`` or ``lea_app``; no Qt, no SQL.
"""

from resources.base import Model, ResourceBase
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
)
from resources.errors import LeaError, Problem
from resources.events import (
    SCHEMA_VERSION,
    Checkpoint,
    Event,
    EventType,
    StateSnapshot,
    WriteResult,
)
from resources.kinds import PERSISTED_KINDS, VOLATILE_KINDS, ResourceKind
from resources.peer import (
    CanConfiguration,
    Device,
    EthernetConfiguration,
    NetworkInterface,
    PeerDescriptor,
    VcanConfiguration,
)
from resources.resource import AnyResource, Resource
from resources.state import (
    ClusterState,
    Deployed,
    Deploying,
    Failed,
    Offline,
    Online,
    PeerConnectionState,
    Progress,
    Undeployed,
    Undeploying,
    Waiting,
)

__all__ = [
    "PERSISTED_KINDS", "SCHEMA_VERSION", "VOLATILE_KINDS", "AnyResource", "CanConfiguration",
    "Checkpoint", "ClusterDeployment", "ClusterDescriptor", "ClusterState", "Deployed", "Deploying",
    "Device", "EthernetConfiguration", "Event", "EventType", "Failed", "LeaError", "Model",
    "NetworkInterface", "Offline", "Online", "Parameter", "ParameterAbsent", "ParameterError",
    "ParameterKind", "ParameterPresent", "ParameterReport", "PeerConfiguration",
    "PeerConfigurationState", "PeerConnectionState", "PeerDescriptor", "Problem", "Progress",
    "Resource", "ResourceBase", "ResourceKind", "StateSnapshot", "Target", "Undeployed",
    "Undeploying", "VcanConfiguration", "Waiting", "WriteResult",
]
