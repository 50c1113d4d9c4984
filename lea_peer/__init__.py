"""lea-peer: the agent a test bench runs (openDuT's EDGAR). It connects to the backend's
``WS /api/v1/peer/connect`` (resources/agent.py), applies each PeerConfiguration parameter to the
bench with netlink and reports its state. It imports only the shared contract, ``resources``."""

__version__ = "0.1.0"
