"""Pipelines: published notebooks, versioned in git, run by papermill on schedules.

A JupyterHub-managed service (`python -m analysis_hub.pipelines`), so that
schedules keep running while their authors' servers are culled.
"""
