"""The logs service: prints every message of the `logs` exchange to stderr."""
