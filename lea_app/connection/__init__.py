"""Connections to a backend: remote (a server, or the embedded backend LEA runs as its child process)."""
