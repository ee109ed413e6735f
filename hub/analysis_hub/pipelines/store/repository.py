"""Each team's pipeline versions in a git repository of its own (I/O).

Contract: `TeamRepository(root, team)` keeps `<root>/<team>/`, a plain git
repository with one folder per pipeline holding `notebook.ipynb` (outputs
stripped), or a workflow's `pipeline.yaml` and the notebooks it names, and
`version.json` (profile, resources, image, parameters, steps...).
`commit(...)` records one version with the publishing hub user as the
author and tags it `<pipeline>/v<N>`, so `git log`, `git diff` and `git blame`
work with ordinary tools; `read(commit, pipeline)` returns a version's files.
Callers serialise commits to one repository (see versions.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

COMMITTER = {"GIT_COMMITTER_NAME": "analysis-hub pipelines", "GIT_COMMITTER_EMAIL": "pipelines@analysis-hub"}


class TeamRepository:
    def __init__(self, root: Path, team: str):
        self.path = Path(root) / team

    def _git(self, *args: str, env: dict | None = None) -> str:
        result = subprocess.run(
            ["git", "-C", str(self.path), *args],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.path), **(env or {})},
        )
        return result.stdout

    def ensure(self) -> None:
        if not (self.path / ".git").is_dir():
            self.path.mkdir(parents=True, exist_ok=True)
            self._git("init", "--quiet", "--initial-branch=main")

    def commit(
        self, pipeline: str, number: int, files: dict[str, str], metadata: dict, author: str, message: str
    ) -> str:
        """`files`: name -> text, the version's whole content besides `version.json`."""
        self.ensure()
        folder = self.path / pipeline
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():  # a version is exactly its files: none left from the last
            old.unlink()
        for file, text in files.items():
            (folder / file).write_text(text)
        (folder / "version.json").write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
        self._git("add", "--", pipeline)
        author_env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": f"{author}@analysis-hub", **COMMITTER}
        subject = f"{pipeline} v{number}: {message}" if message else f"{pipeline} v{number}"
        # --allow-empty: republishing the same notebook is still a new version.
        self._git("commit", "--quiet", "--allow-empty", "-m", subject, env=author_env)
        sha = self._git("rev-parse", "HEAD").strip()
        self._git("tag", f"{pipeline}/v{number}", sha)
        return sha

    def read_file(self, commit: str, pipeline: str, file: str) -> str:
        return self._git("show", f"{commit}:{pipeline}/{file}")

    def read(self, commit: str, pipeline: str) -> tuple[str, dict]:
        notebook = self._git("show", f"{commit}:{pipeline}/notebook.ipynb")
        metadata = json.loads(self._git("show", f"{commit}:{pipeline}/version.json"))
        return notebook, metadata

    def log(self, pipeline: str) -> list[dict]:
        out = self._git("log", "--format=%H%x09%an%x09%aI%x09%s", "--", pipeline)
        rows = [line.split("\t", 3) for line in out.splitlines() if line]
        return [{"commit": c, "author": a, "date": d, "subject": s} for c, a, d, s in rows]
