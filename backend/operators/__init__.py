"""Operators: threads with their own kind-filtered subscription that react to events."""
