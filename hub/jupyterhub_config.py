"""Thin wiring: `jupyterhub -f hub/jupyterhub_config.py` with $ANALYSIS_HUB_SETTINGS.

All logic lives in the analysis_hub package (settings -> apply_settings).
"""

from analysis_hub.startup import configure

configure(c)  # noqa: F821 (`c` is provided by JupyterHub)
