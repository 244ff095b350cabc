"""Execution modes: loops that drive the clients."""
