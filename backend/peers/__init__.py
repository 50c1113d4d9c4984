"""Peer brokers: how the backend reaches peers (demo simulation now, a WebSocket agent next)."""
