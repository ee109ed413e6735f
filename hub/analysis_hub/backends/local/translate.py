"""Profile -> what the local backend runs: a pure translation.

The local backend runs a profile as a process from the image's Python
environment, with the profile's limits enforced by cgroups. Node selectors
and tolerations only mean something on Kubernetes and are left out here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...catalog import ResolvedProfile


@dataclass(frozen=True)
class LocalServerSpec:
    slug: str
    display_name: str
    image: str
    env: dict[str, str]
    cpu_guarantee: float | None
    cpu_limit: float | None
    memory_guarantee: int | None
    memory_limit: int | None
    gpus: int


def local_server_spec(resolved: ResolvedProfile) -> LocalServerSpec:
    r = resolved.resources
    return LocalServerSpec(
        slug=resolved.slug,
        display_name=resolved.profile.display_name,
        image=resolved.image,
        env=dict(resolved.env),
        cpu_guarantee=r.cpu_guarantee,
        cpu_limit=r.cpu_limit,
        memory_guarantee=r.memory_guarantee,
        memory_limit=r.memory_limit,
        gpus=r.gpus,
    )
