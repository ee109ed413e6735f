# Run by the Zero to JupyterHub chart's jupyterhub_config.py (every jupyterhub_config.d/*.py),
# after its own configuration: settings and catalog come from the files this chart mounts.
from analysis_hub.backends.kubernetes.z2jh import configure

configure(c)  # noqa: F821 (`c` is the chart's config object)
