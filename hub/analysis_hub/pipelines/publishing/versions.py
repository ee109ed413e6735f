"""Published versions: a notebook and its profile, immutable, kept in git and in the database.

Contract:
- `Versions.publish(caller, team, name, notebook, profile, ...)` makes the
  next version of `team/name` (1, 2, 3...; the pipeline is created by its
  first publish): the notebook with outputs stripped and its metadata
  (profile, resolved resources, image, parameters from the cell tagged
  `parameters`, kernel, message, author) are committed to the team's git
  repository (`repository.py`), and a `Version` row names the commit. A
  version never changes afterwards; deploying or rolling back only points
  at one.
- `publish_workflow(caller, team, name, spec, notebooks, ...)` does the same
  for a workflow: `pipeline.yaml` and the notebooks it names, checked
  together (`workflow.check_workflow`: every step's profile, parameters,
  dependencies and conditions) and committed as one version.
- Without a profile, the version (or step) gets the one the notebook was written in:
  its kernel's display name is its image's (`kernels.profile_for_kernel`).
- Refused before anything is written: a caller outside the team
  (`Forbidden`), a notebook over `max_bytes` (`TooLarge`), a notebook that
  can't be a pipeline (`NotebookError`), a profile the team may not use
  (`ProfileRequestError`), a version needing more GPUs than this machine has
  when there is no cluster (`SpecError`), a publish based on an outdated
  `parent` or under a deleted pipeline's name (`Conflict`). Publishes to one
  team are serialised (one git repository per team), so the second of two
  publishes on the same parent is the one refused.
- `find_version(pipeline, number)` is the version row or `NotFound` listing
  the versions there are; `notebook_text(team, name, version)` reads a
  version's notebook back from git; `notebook(caller, ...)` too, a
  workflow's file named by `file` (NotFound listing its files otherwise, so
  a diff or a notebook view of a workflow is a clear 404, not a git error).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import nbformat
from sqlalchemy import select

from ...catalog import ResolvedProfile
from ...catalog_source import CatalogSource
from ...images import discover_images
from ...kernels import profile_for_kernel
from ...selection import ProfileRequestError, select_profile
from ..access import Caller, Conflict, NotFound, TooLarge, find_pipeline, require_member
from ..store.models import AuditEvent, Pipeline, Version
from ..store.repository import TeamRepository
from ..web.views import version_view
from .notebooks import NotebookError, kernel_name, notebook_parameters, read_notebook, strip_outputs
from .specs import SpecError, check_name
from .workflow_spec import SPEC_FILE, check_workflow, declared_run_parameters, stored_steps

NOTEBOOK_FILE = "notebook.ipynb"  # a single-notebook version's one file
NOTEBOOK_FILE_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}\.ipynb$"


def _profile_columns(resolved: ResolvedProfile) -> dict:
    return {
        "profile": resolved.slug,
        "choices": resolved.choices,
        "resources": resolved.to_stored(),
        "image": resolved.image,
    }


def find_version(pipeline: Pipeline, number) -> Version:
    version = next((v for v in pipeline.versions if v.number == number), None)
    if version is None:
        numbers = [v.number for v in pipeline.versions]
        raise NotFound(f"{pipeline.team}/{pipeline.name} has no version {number!r} (versions: {numbers})")
    return version


class Versions:
    def __init__(
        self,
        *,
        sessions,
        repos_root: Path,
        catalog: CatalogSource,
        max_bytes: int,
        gpus_available: int | None,
    ):
        self.sessions = sessions
        self.repos_root = repos_root
        self.catalog = catalog
        self.max_bytes = max_bytes
        # None: a cluster's GPU nodes decide; on one machine a version needing more GPUs
        # than it has could never run.
        self.gpus_available = gpus_available
        self._team_locks: dict[str, asyncio.Lock] = {}

    async def publish(
        self,
        caller: Caller,
        team: str,
        name: str,
        notebook: bytes | str | dict,
        profile: str | None,
        choices: dict | None = None,
        message: str = "",
        parent: int | None = None,
    ) -> dict:
        """A single-notebook version: the notebook and its profile."""
        self._check_caller(caller, team, name)
        self._check_size(notebook)
        nb = read_notebook(notebook)
        parameters = notebook_parameters(nb)
        if not profile:
            profile = self._profile_of_kernel(nb, team)
        # The profile must be one the team may use, as in the spawn form.
        resolved = self._resolve(team, profile, choices or {})
        metadata = {
            **_profile_columns(resolved),
            "parameters": {k: p.to_json() for k, p in parameters.items()},
            "kernel": kernel_name(nb),
        }
        files = {NOTEBOOK_FILE: nbformat.writes(strip_outputs(nb))}
        return await self._commit(caller, team, name, files, metadata, message, parent)

    async def publish_workflow(
        self,
        caller: Caller,
        team: str,
        name: str,
        spec: str,
        notebooks: dict,
        message: str = "",
        parent: int | None = None,
    ) -> dict:
        """A workflow version: `pipeline.yaml` (`spec`) and the notebooks it names (file -> notebook),
        checked as a whole (workflow.check_workflow) before anything is written."""
        self._check_caller(caller, team, name)
        if not isinstance(spec, str) or not isinstance(notebooks, dict):
            raise SpecError(
                "spec (the text of pipeline.yaml) and notebooks (file name -> notebook) are required"
            )
        self._check_size(spec, *(json.dumps(n) if isinstance(n, dict) else n for n in notebooks.values()))
        parsed = {}
        for file, notebook in notebooks.items():
            if not re.match(NOTEBOOK_FILE_RE, str(file)):
                raise SpecError(f"notebooks: {str(file)[:60]!r} is not a notebook file name like train.ipynb")
            try:
                parsed[file] = read_notebook(notebook)
            except NotebookError as e:
                raise NotebookError(f"{file}: {e}") from None

        def resolve(profile, choices, nb):
            try:
                return self._resolve(team, profile or self._profile_of_kernel(nb, team), choices)
            except (ProfileRequestError, SpecError) as e:
                raise ValueError(str(e)) from None

        steps = check_workflow(spec, parsed, resolve)
        notebook_steps = [s for s in steps if s.kind == "notebook"]
        if not notebook_steps:
            raise SpecError(f"{SPEC_FILE}: steps: a workflow needs at least one notebook step")
        first = notebook_steps[0]
        metadata = {
            # The version's own columns are its first notebook step's; `steps` holds them all.
            "profile": first.profile,
            "choices": first.choices,
            "resources": first.resources,
            "image": first.image,
            "kernel": first.kernel,
            "parameters": {k: p.to_json() for k, p in declared_run_parameters(steps).items()},
            "steps": stored_steps(steps),
        }
        used = {s.notebook for s in notebook_steps}
        files = {SPEC_FILE: spec} | {
            f: nbformat.writes(strip_outputs(nb)) for f, nb in parsed.items() if f in used
        }
        return await self._commit(caller, team, name, files, metadata, message, parent)

    def _check_caller(self, caller: Caller, team: str, name: str) -> None:
        check_name("team", team)
        check_name("pipeline", name)
        require_member(caller, team)

    def _check_size(self, *texts) -> None:
        size = sum(len(t) if isinstance(t, bytes | str) else 0 for t in texts)
        if size > self.max_bytes:
            raise TooLarge(
                f"the upload is {size / 2**20:.1f} MiB; the limit is {self.max_bytes // 2**20} MiB"
            )

    def _resolve(self, team: str, profile: str, choices: dict) -> ResolvedProfile:
        resolved = select_profile(self.catalog.current(), {team}, {**choices, "profile": profile})
        if self.gpus_available is not None and resolved.resources.gpus > self.gpus_available:
            raise SpecError(
                f"profile {profile!r} with {resolved.choices} needs {resolved.resources.gpus} GPU(s) and"
                f" this machine has {self.gpus_available}; choose a CPU option"
            )
        return resolved

    async def _commit(self, caller, team, name, files: dict, metadata: dict, message: str, parent) -> dict:
        metadata = {**metadata, "message": message, "published_by": caller.name}
        async with self._team_locks.setdefault(team, asyncio.Lock()):
            with self.sessions.begin() as db:
                pipeline = db.scalar(select(Pipeline).where(Pipeline.team == team, Pipeline.name == name))
                if pipeline is not None and pipeline.deleted_at is not None:
                    raise Conflict(f"{team}/{name} was deleted; publish under another name")
                latest = max((v.number for v in pipeline.versions), default=0) if pipeline else 0
                if parent is not None and parent != latest:
                    raise Conflict(
                        f"{team}/{name} is at v{latest}, not v{parent}: someone published meanwhile;"
                        " look at the new version and publish again"
                    )
                if pipeline is None:
                    pipeline = Pipeline(team=team, name=name, created_by=caller.name, parameters={})
                    db.add(pipeline)
                    db.flush()
                number = latest + 1
                commit = await asyncio.to_thread(
                    TeamRepository(self.repos_root, team).commit,
                    name,
                    number,
                    files,
                    metadata,
                    caller.name,
                    message,
                )
                version = Version(pipeline_id=pipeline.id, number=number, commit=commit, **metadata)
                db.add(version)
                after = {
                    "version": number,
                    "commit": commit,
                    "profile": metadata["profile"],
                    "message": message,
                }
                if metadata.get("steps"):
                    after["steps"] = [step["name"] for step in metadata["steps"]]
                db.add(AuditEvent(actor=caller.name, action="publish", team=team, pipeline=name, after=after))
            return version_view(version)

    def _profile_of_kernel(self, nb, team: str) -> str:
        display_name = nb.metadata.get("kernelspec", {}).get("display_name", "")
        allowed = self.catalog.current().allowed_for({team})
        try:
            return profile_for_kernel(allowed, display_name, discover_images(self.catalog.images_dir))
        except ValueError as e:
            raise SpecError(str(e)) from None

    def notebook_text(self, team: str, name: str, version: Version, file: str | None = None) -> str:
        """A version's notebook (a workflow's: the step's `file`) as published."""
        return TeamRepository(self.repos_root, team).read_file(version.commit, name, file or NOTEBOOK_FILE)

    def notebook(self, caller: Caller, team: str, name: str, number: int, file: str | None = None) -> str:
        """A version's notebook; a workflow's file named by `file` (pipeline.yaml or a step's
        notebook), since a workflow has no one notebook: NotFound listing its files otherwise."""
        with self.sessions() as db:
            version = find_version(find_pipeline(db, caller, team, name), number)
        files = [SPEC_FILE, *sorted({s["notebook"] for s in version.steps or [] if s.get("notebook")})]
        if version.steps and file not in files:
            raise NotFound(f"{team}/{name} v{number} is a workflow; its files: {', '.join(files)}")
        if not version.steps and file not in (None, NOTEBOOK_FILE):
            raise NotFound(f"{team}/{name} v{number} has one file, {NOTEBOOK_FILE}")
        return self.notebook_text(team, name, version, file)

    def diff(self, caller: Caller, team: str, name: str, a: int, b: int) -> str:
        """Two versions' notebooks compared by nbdime, as text."""
        import nbdime  # slow to import; only for a diff
        from nbdime.prettyprint import PrettyPrintConfig, pretty_print_diff

        left = nbformat.reads(self.notebook(caller, team, name, a), as_version=4)
        right = nbformat.reads(self.notebook(caller, team, name, b), as_version=4)
        lines: list[str] = []

        class Collect:
            def write(self, text):
                lines.append(text)

        pretty_print_diff(
            left, nbdime.diff_notebooks(left, right), "notebook", PrettyPrintConfig(out=Collect())
        )
        return "".join(lines) or "(no differences)\n"
