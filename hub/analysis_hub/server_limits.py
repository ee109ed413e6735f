"""How many servers, and how many GPU servers, one user may run at once.

Contract (pure): `check_server_limits(limits, user, server_name, gpus, running)`
raises `ServerLimitError`, whose message the hub returns as HTTP 400 before
anything starts, when starting server `server_name` (with `gpus` GPUs) would
give `user` more running servers than `limits.max_per_user`, or more servers
holding GPUs than `limits.max_gpu_per_user`. `running` lists the user's
other servers that are running or starting; the message names them, so the
user knows which one to stop. Every backend calls it where a profile is
applied (`backends.catalog_spawner.apply_profile_request`).

JupyterHub's own `named_server_limit_per_user` (set to the same
`servers.max_per_user`) separately bounds how many named servers a user may
keep, stopped ones included.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerLimits:
    max_per_user: int | None = None  # None: no limit
    max_gpu_per_user: int | None = None


@dataclass(frozen=True)
class RunningServer:
    name: str  # "" is the user's default server
    profile: str
    gpus: int

    @property
    def shown(self) -> str:
        label = f"'{self.name}'" if self.name else "the default server"
        gpus = f", {self.gpus} GPU{'s' if self.gpus > 1 else ''}" if self.gpus else ""
        return f"{label} ({self.profile or 'unknown profile'}{gpus})"


class ServerLimitError(ValueError):
    """Starting this server would exceed the user's limits; the message is shown to the user."""


def check_server_limits(
    limits: ServerLimits, user: str, server_name: str, gpus: int, running: list[RunningServer]
) -> None:
    others = [s for s in running if s.name != server_name]
    if limits.max_per_user is not None and len(others) >= limits.max_per_user:
        raise ServerLimitError(
            f"{user} already runs {_count(len(others), 'server')}, the most allowed per user"
            f" (servers.max_per_user = {limits.max_per_user}): {_listed(others)}."
            " Stop one of them first."
        )
    if gpus and limits.max_gpu_per_user is not None:
        with_gpus = [s for s in others if s.gpus]
        if len(with_gpus) >= limits.max_gpu_per_user:
            held = f": {_listed(with_gpus)}" if with_gpus else ""
            raise ServerLimitError(
                f"{user} already runs {_count(len(with_gpus), 'GPU server')}, the most allowed per user"
                f" (servers.max_gpu_per_user = {limits.max_gpu_per_user}){held}."
                " Stop one of them, or pick a CPU option or profile."
            )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _listed(servers: list[RunningServer]) -> str:
    return ", ".join(s.shown for s in sorted(servers, key=lambda s: s.name))
