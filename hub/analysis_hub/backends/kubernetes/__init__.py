"""The Kubernetes backend: KubeSpawner fed from the shared catalog (see profiles.py)."""
