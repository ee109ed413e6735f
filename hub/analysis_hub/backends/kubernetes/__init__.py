"""The Kubernetes backend: KubeSpawner from the shared catalog (profiles.py); pipeline steps as Jobs."""
