"""The cluster suite: a package, so that its cluster and install end with it (package-scoped fixtures)."""
