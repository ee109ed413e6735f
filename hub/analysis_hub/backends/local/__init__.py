"""The local backend: a process per user from a per-image Python environment."""
