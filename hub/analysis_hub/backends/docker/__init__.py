"""The docker backend: a container per user from the curated images (DockerSpawner)."""
