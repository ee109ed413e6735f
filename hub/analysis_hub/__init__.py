"""analysis-hub: a multi-tenant JupyterHub for data teams.

The package turns one settings file and one profile catalog into JupyterHub
configuration. Start at `settings` (what an admin writes), `catalog` (the
profiles), and `config.apply_settings` (how both become traitlets).
"""

__version__ = "0.1.0"
