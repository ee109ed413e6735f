"""What every backend's spawner shares: the catalog, the user's groups, per-server state, the form.

Contract:
- `CatalogSpawnerMixin`, mixed in before each backend's JupyterHub spawner class
  (LocalProcessSpawner, DockerSpawner, KubeSpawner), holds the per-server
  facts all three keep alike: the `catalog_dir`/`images_dir` settings and the
  running hub's catalog, the user's groups, the owner key of this server
  (user, or user-name for a named server), the profile it was started with,
  the GPUs the machine's pool handed it (one-machine backends), and the
  activity interval reported to the culler, and the team folders the
  user's groups give this server (`team_folders`, `teams.member_teams`). Configuration sets these once on
  `c.CatalogSpawnerMixin` (`config.apply_spawner`), whatever the backend.
- `CatalogProfileForm` adds the spawn form and `user_options` checking of
  the one-machine backends (local, docker): a request the catalog does not
  allow for the user's groups, or a GPU profile on a machine without enough
  GPUs, is refused with HTTP 400 before anything starts. The chosen profile
  is `spawner.resolved`. Kubernetes picks profiles through KubeSpawner's own
  `profile_list` instead (kubernetes/spawner.py), checked the same way.
- Metrics: every subclass's `start()` is timed and its failures counted
  (`hub_metrics.timed_start`), labelled with `profile_slug` (kept in the
  state, so right after a hub restart too) and the class's `backend_name`;
  importing this module (JupyterHub loading the spawner class) registers the
  scrape-time collector of running servers and GPUs.
- Usage: a started server opens a session in the hub's usage log
  (`usage.UsageLog` at `usage_db`) with its profile's reserved resources; the
  stop (JupyterHub's post-stop step, whatever stopped it) closes it. The
  session id is kept in the state, so it survives a hub restart.
- `apply_profile_request(spawner, user_options)` is that check, shared by
  every backend (default and named servers alike): the catalog's selection,
  the user's server and GPU-server limits (`server_limits.py`), then it
  records the chosen profile and writes the server's effective idle timeout
  into its `user_options`, where the REST API shows it to the culler
  (`culling.py`) and where it outlives a hub restart. A refusal is a
  `refusals.RequestRefused` (400, logged as one warning line), and after
  JupyterHub's stop the server's record is put back as it was before the
  request (`refusals.RecordBeforeRequest`): a refused request changes nothing.
"""

from __future__ import annotations

import sqlite3
import time

from tornado import web
from traitlets import Dict, Integer, List, Unicode, default, observe
from traitlets.config import LoggingConfigurable

from ..catalog import Catalog, ResolvedProfile
from ..catalog_source import CatalogSource
from ..forms import gpu_shortfall, render_profile_form, resources_text
from ..hub_metrics import hub_state, timed_start
from ..idle_timeouts import IDLE_TIMEOUT_KEY, site_default_text
from ..metrics import register_state, team_of
from ..quantities import format_duration
from ..runtime.gpus import GpuPool, GpuUnavailable, machine_gpu_pool
from ..selection import ProfileRequestError, options_from_form, select_profile
from ..server_limits import RunningServer, ServerLimitError, ServerLimits, check_server_limits
from ..teams import TeamFolder, member_teams
from ..usage import UsageLog, reserved
from .refusals import KEPT_LINE, RecordBeforeRequest, RequestRefused, quiet_refusals

# The variable the images' server extension reads (singleuser/analysis_hub_activity.py).
ACTIVITY_INTERVAL_ENV = "JUPYTERHUB_ACTIVITY_INTERVAL"
PROFILE_ENV = "ANALYSIS_HUB_PROFILE"
# Where the server reaches the pipelines service (the lab extension and the CLI read it).
PIPELINES_URL_ENV = "ANALYSIS_HUB_PIPELINES_URL"


class CatalogSpawnerMixin(LoggingConfigurable):
    catalog_dir = Unicode(config=True, help="folder of profile YAML files")
    images_dir = Unicode(config=True, help="folder of images/<name>/ definitions")
    known_images = List(
        Unicode(), config=True, help="image names profiles may use; empty: the images under images_dir"
    )
    activity_interval = Integer(60, config=True, help="seconds between the server's activity reports")
    site_idle_timeout = Integer(
        None,
        allow_none=True,
        config=True,
        help="the culler's timeout for servers without their own, seconds (0: no culler; None: unknown)",
    )
    pipelines_url = Unicode(
        "", config=True, help="the pipelines service's URL as servers reach it; '' when they can't"
    )
    gpu_state_file = Unicode(
        "", config=True, help="the machine's GPU allocations, shared with the pipelines service"
    )
    usage_db = Unicode("", config=True, help="the hub's usage log (SQLite); '' records none")
    max_servers_per_user = Integer(
        None, allow_none=True, config=True, help="servers one user may run at once (None: no limit)"
    )
    max_gpu_servers_per_user = Integer(
        None, allow_none=True, config=True, help="servers holding GPUs one user may run at once"
    )

    teams = Dict(config=True, help="hub groups with a team folder: team -> {read_only: bool}")

    resolved: ResolvedProfile | None = None
    gpu_ids: list[str]
    backend_name = "unknown"  # each backend's spawner names itself (metrics' `backend` label)
    failure_reason = ""  # why the last start failed, when the spawner knows better than the exception
    _timing_start = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "start" in cls.__dict__:
            cls.start = timed_start(cls.__dict__["start"])

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gpu_ids = []
        self.phase_seconds: dict[str, float] = {}
        self._state_profile = ""
        self.usage_id: int | None = None
        self._before_request = RecordBeforeRequest.of(self.orm_spawner, self.user_options)
        self.refused = False  # set by apply_profile_request; undone after JupyterHub's stop
        quiet_refusals(self.log)

    @observe("user_options")
    def _options_kept(self, change):
        # Options set outside a start (REST PUT of a named server) are the record's own; a
        # start sets them while pending, and a refused start must not keep them.
        if not self._spawn_pending and hasattr(self, "_before_request"):
            self._before_request = RecordBeforeRequest(self._before_request.ran, dict(change.new or {}))

    @property
    def profile_slug(self) -> str:
        """The profile this server runs (or last ran); `unknown` before one is chosen."""
        return self.resolved.slug if self.resolved else self._state_profile or "unknown"

    @property
    def catalog(self) -> Catalog:
        known = tuple(self.known_images) or None
        return CatalogSource.shared(self.catalog_dir, self.images_dir, self.log, known).current()

    @property
    def gpu_pool(self) -> GpuPool:
        return machine_gpu_pool(self.gpu_state_file or None)

    @property
    def user_groups(self) -> set[str]:
        return {group.name for group in self.user.groups}

    @property
    def team_folders(self) -> tuple[TeamFolder, ...]:
        """The team folders this server gets: its user's groups at this spawn."""
        return member_teams(self.teams, self.user_groups)

    @property
    def owner(self) -> str:
        """This server's key in the GPU pool and the names derived from it."""
        return f"{self.user.name}-{self.name}" if self.name else self.user.name

    def resolve_default_profile(self) -> ResolvedProfile:
        """A start with no options at all: the catalog's default for this user."""
        if self.resolved is None:
            self.resolved = select_profile(self.catalog, self.user_groups, {})
        return self.resolved

    # ---- the user's servers: limits and the home page -------------------------

    def requested_profile(self) -> ResolvedProfile | None:
        """The profile this server runs (or last ran); after a hub restart, from its recorded request."""
        if self.resolved is not None:
            return self.resolved
        try:
            return select_profile(self.catalog, self.user_groups, dict(self.user_options or {}))
        except ProfileRequestError:
            return None

    @property
    def server_gpus(self) -> int:
        """GPUs this server holds or asks for."""
        resolved = self.requested_profile()
        return resolved.resources.gpus if resolved else len(self.gpu_ids)

    @property
    def server_summary(self) -> dict:
        """What the hub's home page shows of this server (templates/home.html)."""
        resolved = self.requested_profile()
        if resolved is None:
            return {"profile": "", "resources": "", "idle_timeout": ""}
        timeout = resolved.idle_timeout
        return {
            "profile": resolved.profile.display_name,
            "resources": resources_text(resolved.resources),
            "idle_timeout": format_duration(timeout)
            if timeout
            else site_default_text(self.site_idle_timeout),
        }

    def running_siblings(self) -> list[RunningServer]:
        """The user's other servers that are running or starting."""
        siblings = []
        # A spawner built outside a running hub (a manifest preview) has no siblings.
        for name, spawner in getattr(self.user, "spawners", {}).items():
            if spawner is self or not spawner.active:
                continue
            profile = (spawner.user_options or {}).get("profile", "")
            siblings.append(RunningServer(name, profile, getattr(spawner, "server_gpus", 0)))
        return siblings

    # ---- GPUs from the machine's pool (local and docker) ----------------------

    def allocate_gpus(self, count: int) -> list[str]:
        try:
            self.gpu_ids = self.gpu_pool.allocate(self.owner, count)
        except GpuUnavailable as e:
            raise web.HTTPError(503, str(e)) from None
        return self.gpu_ids

    def release_gpus(self) -> None:
        if self.gpu_ids:
            self.gpu_pool.release(self.owner)
        self.gpu_ids = []

    # ---- what every server reports and keeps ----------------------------------

    def get_env(self):
        env = super().get_env()
        env[ACTIVITY_INTERVAL_ENV] = str(self.activity_interval)
        if self.resolved:
            env[PROFILE_ENV] = self.resolved.slug
        if self.pipelines_url:
            env[PIPELINES_URL_ENV] = self.pipelines_url
        return env

    # ---- usage for chargeback ------------------------------------------------

    def record_started(self) -> None:
        """The server started (called once per successful start by `timed_start`)."""
        if not self.usage_db or not self.resolved:
            return
        r = self.resolved.resources
        try:
            self.usage_id = self._usage_log().open_session(
                user=self.user.name,
                server=self.name,
                profile=self.resolved.slug,
                team=team_of(self.user_groups),
                cpu=reserved(r.cpu_guarantee, r.cpu_limit),
                memory_bytes=reserved(r.memory_guarantee, r.memory_limit),
                gpus=r.gpus,
                at=time.time(),
            )
        except sqlite3.Error as e:  # a usage record never fails a spawn
            self.log.error("Could not record usage of %s in %s: %s", self._log_name, self.usage_db, e)

    def _usage_log(self) -> UsageLog:
        return UsageLog(self.usage_db)

    def run_post_stop_hook(self):
        # JupyterHub calls this after every stop: the user's, the culler's, a server found dead,
        # and the stop that follows a refused request, whose record goes back as it was.
        if self.refused:
            self.refused = False
            self._before_request.restore(self)
        if self.usage_db and self.usage_id is not None:
            try:
                self._usage_log().close_session(self.usage_id, time.time())
            except sqlite3.Error as e:
                self.log.error("Could not record the stop of %s in %s: %s", self._log_name, self.usage_db, e)
            self.usage_id = None
        return super().run_post_stop_hook()

    def get_state(self):
        state = super().get_state()
        if self.usage_id is not None:
            state["usage_id"] = self.usage_id
        if self.gpu_ids:
            state["gpus"] = self.gpu_ids
        if self.resolved:
            state["profile"] = self.resolved.slug
        return state

    def load_state(self, state):
        super().load_state(state)
        self.gpu_ids = state.get("gpus", [])
        self._state_profile = state.get("profile", "")
        self.usage_id = state.get("usage_id", self.usage_id)
        if self.gpu_ids:
            self.gpu_pool.claim(self.owner, self.gpu_ids)

    def clear_state(self):
        # usage_id stays: LocalProcessSpawner clears the state inside stop(), before the
        # post-stop step that closes the session.
        super().clear_state()
        self.gpu_ids = []


def _hub_metrics() -> list:
    """Running servers and GPUs, read from the running hub at each scrape (none outside a hub)."""
    from jupyterhub.app import JupyterHub

    if not JupyterHub.initialized():
        return []
    app = JupyterHub.instance()
    gpu_state_file = app.config.CatalogSpawnerMixin.get("gpu_state_file") or None
    return hub_state(app, machine_gpu_pool(gpu_state_file), CatalogSpawnerMixin)


# Registered when JupyterHub loads the spawner class: the hub's /hub/metrics has them from the start.
register_state("hub", _hub_metrics)


class CatalogProfileForm(CatalogSpawnerMixin):
    @default("options_form")
    def _default_options_form(self):
        def form(spawner):
            profiles = spawner.catalog.allowed_for(spawner.user_groups)
            return render_profile_form(profiles, spawner.gpus_here(), spawner.site_idle_timeout)

        return form

    def options_from_form(self, formdata):
        return options_from_form(formdata)

    def gpus_here(self) -> int | None:
        """GPUs a server may have here: the machine's pool; None where a cluster schedules them."""
        return self.gpu_pool.total

    @default("apply_user_options")
    def _default_apply_user_options(self):
        def apply(spawner, user_options):
            def machine_check(resolved):
                shortfall = gpu_shortfall(resolved.resources.gpus, spawner.gpus_here())
                if shortfall:
                    raise ProfileRequestError(
                        f"Profile {resolved.slug!r} {shortfall}. Pick a CPU option or another profile."
                    )

            apply_profile_request(spawner, user_options, machine_check)

        return apply


def apply_profile_request(spawner: CatalogSpawnerMixin, user_options: dict | None, machine_check=None):
    """Select the requested profile, check the user's limits, record both; 400 when refused.

    `machine_check(resolved)` may refuse what this machine can't run (GPUs)
    before the limits are counted. Nothing has started yet when this runs.
    """
    limits = ServerLimits(spawner.max_servers_per_user, spawner.max_gpu_servers_per_user)
    try:
        resolved = select_profile(spawner.catalog, spawner.user_groups, dict(user_options or {}))
        if machine_check:
            machine_check(resolved)
        check_server_limits(
            limits, spawner.user.name, spawner.name, resolved.resources.gpus, spawner.running_siblings()
        )
    except (ProfileRequestError, ServerLimitError) as e:
        # One line: JupyterHub's own error lines and tracebacks about it are filtered out.
        spawner.log.warning("Refused to start %s: %s", spawner._log_name, e, extra=KEPT_LINE)
        spawner.refused = True
        raise RequestRefused(str(e)) from None
    spawner.resolved = resolved
    if resolved.idle_timeout is not None:
        recorded = {**(user_options or {}), IDLE_TIMEOUT_KEY: resolved.idle_timeout}
        spawner.user_options = recorded
        orm_spawner = getattr(spawner, "orm_spawner", None)
        if orm_spawner is not None:
            # The hub saved the request before this hook ran; the culler reads the effective value.
            orm_spawner.user_options = recorded
    return resolved
