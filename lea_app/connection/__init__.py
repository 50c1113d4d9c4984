"""Connections to a backend: embedded (in-process) and remote; the only place lea_app meets backend."""
