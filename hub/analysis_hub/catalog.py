"""The profile catalog: one YAML file per profile, the single source of truth.

Contract:
- `load_catalog(catalog_dir, images_dir)` reads every `*.yaml` in the folder
  and returns a `Catalog`, or raises `CatalogError` listing *every* problem
  as `file: key: reason` (unknown key, duplicate slug, limit below guarantee,
  unknown image, bad quantity, ...). It never returns a partial catalog.
- The models below are the schema. `profiles/schema.json` is their JSON Schema
  export (`analysis-hub profiles schema`), kept in the repo for editors and the
  Helm chart; a unit test keeps the two in step.
- `resolve(profile, choices, idle_timeout)` is pure, and the one place a
  profile is resolved: it applies the chosen options' overrides and the
  requested idle timeout (within the profile's `idle_timeouts.IdleTimeout`
  range; its default when none is asked) and returns the `ResolvedProfile`
  (effective `Resources`, env, selectors, tolerations) that every backend
  turns into its server or run plan. `to_stored`/`from_stored` keep it in a
  pipeline version and read it back unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import CatalogError
from .idle_timeouts import IdleTimeout, choose_idle_timeout
from .images import IMAGE_FILE, ImageDefinitionError, ImageFacts, discover_images
from .quantities import parse_cpu, parse_memory
from .validation import describe_validation_error

SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
SLUG_RE = re.compile(SLUG_PATTERN)

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, description="lower-case letters, digits, '-'")]
Memory = Annotated[str | int, Field(description="bytes, or a quantity such as 4Gi, 512Mi, 2G")]
Cpu = Annotated[str | float, Field(description="cores, or a quantity such as 2, 0.5, 500m")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bounds(_Strict):
    """A guarantee (what is reserved) and a limit (what may be used)."""

    guarantee: Any = None
    limit: Any = None


class CpuBounds(Bounds):
    guarantee: Cpu | None = None
    limit: Cpu | None = None

    @field_validator("guarantee", "limit")
    @classmethod
    def _valid_cpu(cls, value):
        if value is not None:
            parse_cpu(value)
        return value


class MemoryBounds(Bounds):
    guarantee: Memory | None = None
    limit: Memory | None = None

    @field_validator("guarantee", "limit")
    @classmethod
    def _valid_memory(cls, value):
        if value is not None:
            parse_memory(value)
        return value


class Toleration(_Strict):
    key: str | None = None
    operator: str = Field("Equal", pattern=r"^(Equal|Exists)$")
    value: str | None = None
    effect: str | None = Field(None, pattern=r"^(NoSchedule|PreferNoSchedule|NoExecute)$")


class Overrides(_Strict):
    """What a profile sets, and what a choice may change."""

    cpu: CpuBounds | None = None
    memory: MemoryBounds | None = None
    gpus: int | None = Field(None, ge=0, le=16)
    env: dict[str, str] | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None


class ChoiceOption(_Strict):
    display_name: str
    overrides: Overrides = Overrides()


class Choice(_Strict):
    """A per-profile choice (a size, a GPU count...) shown as a drop-down."""

    display_name: str
    default: Slug
    options: dict[Slug, ChoiceOption] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_is_an_option(self):
        if self.default not in self.options:
            raise ValueError(f"default {self.default!r} is not one of the options {sorted(self.options)}")
        return self


class Profile(_Strict):
    """One curated profile: an image and the resources it runs with."""

    slug: Slug
    display_name: str
    description: str = ""
    image: Slug = Field(description="the folder images/<image>/ that defines the image")
    default: bool = False
    cpu: CpuBounds = CpuBounds()
    memory: MemoryBounds = MemoryBounds()
    gpus: int = Field(0, ge=0, le=16)
    env: dict[str, str] = {}
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    allowed_groups: list[str] = Field([], description="hub groups that may use it; empty = everyone")
    choices: dict[Slug, Choice] = {}
    idle_timeout: IdleTimeout | None = Field(
        None, description="the idle timeouts analysts may choose; none: the site's culler.timeout"
    )


# /dev/shm for a GPU server whose profile sets no memory limit (see Resources.shared_memory).
GPU_SHARED_MEMORY_WITHOUT_LIMIT = 8 * 2**30


@dataclass(frozen=True)
class Resources:
    """Resolved numbers every backend translates from (cores and bytes)."""

    cpu_guarantee: float | None
    cpu_limit: float | None
    memory_guarantee: int | None
    memory_limit: int | None
    gpus: int

    @property
    def shared_memory(self) -> int | None:
        """Bytes of memory-backed /dev/shm for this server, or None to keep the runtime's default.

        The one rule every backend follows (docker `--shm-size`, a Kubernetes
        memory `emptyDir` size limit). GPU work needs it: PyTorch's DataLoader
        workers pass tensors through /dev/shm, and Docker's 64 MiB default
        kills them with "bus error". Pages in /dev/shm count against the
        server's memory limit, so half of it leaves the kernel room to run.
        """
        if not self.gpus:
            return None
        return self.memory_limit // 2 if self.memory_limit else GPU_SHARED_MEMORY_WITHOUT_LIMIT


@dataclass(frozen=True)
class ResolvedProfile:
    """A profile with its chosen options applied: what a server runs with."""

    profile: Profile
    choices: dict[str, str]
    resources: Resources
    env: dict[str, str]
    node_selector: dict[str, str]
    tolerations: list[Toleration]
    # Seconds without activity before the culler stops the server; None: the site's culler.timeout.
    idle_timeout: int | None = None

    @property
    def slug(self) -> str:
        return self.profile.slug

    def to_stored(self) -> dict:
        """What a pipeline version records of its profile (JSON), so that it runs with what it was
        published with even after the catalog changes; `from_stored` reads it back."""
        return {
            **dataclasses.asdict(self.resources),
            "env": dict(self.env),
            "node_selector": dict(self.node_selector),
            "tolerations": [t.model_dump(exclude_none=True) for t in self.tolerations],
        }

    @classmethod
    def from_stored(cls, slug: str, image: str, choices: dict[str, str], stored: dict) -> ResolvedProfile:
        resources = {f.name: stored.get(f.name) for f in dataclasses.fields(Resources)}
        return cls(
            profile=Profile(slug=slug, display_name=slug, image=image),
            choices=dict(choices),
            resources=Resources(**{**resources, "gpus": resources["gpus"] or 0}),
            env=dict(stored.get("env") or {}),
            node_selector=dict(stored.get("node_selector") or {}),
            tolerations=[Toleration(**t) for t in stored.get("tolerations") or []],
        )

    @property
    def image(self) -> str:
        return self.profile.image


@dataclass(frozen=True)
class Catalog:
    profiles: tuple[Profile, ...]
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)  # slug -> file it came from
    # The images' capabilities read with the profiles: a running hub's last good catalog keeps
    # the last good image.yaml facts too, so a broken one never reaches a spawn.
    images: dict[str, ImageFacts] = field(default_factory=dict)

    def get(self, slug: str) -> Profile | None:
        return next((p for p in self.profiles if p.slug == slug), None)

    @property
    def default(self) -> Profile:
        return next((p for p in self.profiles if p.default), self.profiles[0])

    def allowed_for(self, groups: set[str] | frozenset[str]) -> list[Profile]:
        """The profiles a member of `groups` may see and start."""
        return [p for p in self.profiles if is_allowed(p, groups)]


def is_allowed(profile: Profile, groups: set[str] | frozenset[str]) -> bool:
    return not profile.allowed_groups or bool(set(profile.allowed_groups) & set(groups))


def resolve(
    profile: Profile, choices: dict[str, str] | None = None, idle_timeout: str | int | None = None
) -> ResolvedProfile:
    """Apply the chosen options (defaults where unchosen) and idle timeout to a profile, once.

    Raises `ValueError` naming the choice and the allowed options when a
    choice is unknown or an option is not offered, or the idle timeout is
    outside the profile's range.
    """
    choices = dict(choices or {})
    unknown = sorted(set(choices) - set(profile.choices))
    if unknown:
        offered = sorted(profile.choices) or "none"
        raise ValueError(f"profile {profile.slug!r} has no choice {unknown[0]!r} (choices: {offered})")
    selected = {}
    merged = _base_overrides(profile)
    for name, choice in profile.choices.items():
        option = choices.get(name, choice.default)
        if option not in choice.options:
            raise ValueError(
                f"{option!r} is not an option of {profile.slug!r} choice {name!r}"
                f" (options: {', '.join(sorted(choice.options))})"
            )
        selected[name] = option
        merged = _merge(merged, choice.options[option].overrides)
    return ResolvedProfile(
        profile=profile,
        choices=selected,
        resources=_resources(merged),
        env=dict(merged.env or {}),
        node_selector=dict(merged.node_selector or {}),
        tolerations=list(merged.tolerations or []),
        idle_timeout=choose_idle_timeout(profile.slug, profile.idle_timeout, idle_timeout),
    )


def load_catalog(
    catalog_dir: str | Path, images_dir: str | Path, known_images: Iterable[str] | None = None
) -> Catalog:
    """Read and validate every profile file in `catalog_dir`. A profile may name an image the
    backend can run: by default the images under `images_dir`; on Kubernetes, those that
    `kubernetes.images` gives a reference (`known_images`)."""
    catalog_dir, images_dir = Path(catalog_dir), Path(images_dir)
    problems: list[str] = []
    profiles: list[Profile] = []
    files: dict[str, str] = {}
    try:
        images = discover_images(images_dir)
    except ImageDefinitionError as e:
        raise CatalogError([str(e)]) from None
    known = sorted(known_images if known_images is not None else images)
    paths = sorted(catalog_dir.glob("*.yaml")) if catalog_dir.is_dir() else []
    if not paths:
        raise CatalogError([f"{catalog_dir}: no profile files (*.yaml) found"])
    for path in paths:
        profile = _load_profile_file(path, problems)
        if profile is None:
            continue
        if profile.slug in files:
            problems.append(f"{path}: slug: duplicate slug {profile.slug!r} (also in {files[profile.slug]})")
            continue
        if profile.image not in known:
            problems.append(
                f"{path}: image: unknown image {profile.image!r}: "
                + (
                    f"no {images_dir / profile.image / IMAGE_FILE}"
                    if known_images is None
                    else "kubernetes.images gives it no reference"
                )
                + f" (known images: {', '.join(known) or 'none'})"
            )
            continue
        files[profile.slug] = str(path)
        profiles.append(profile)
    defaults = [files[p.slug] for p in profiles if p.default]
    if len(defaults) > 1:
        problems.append(
            f"{catalog_dir}: default: only one profile may be the default; set in {', '.join(defaults)}"
        )
    if problems:
        raise CatalogError(problems)
    return Catalog(profiles=tuple(profiles), source=str(catalog_dir), files=files, images=images)


def profile_summary(profile: Profile) -> dict[str, Any]:
    """The facts `profiles list` shows and the form displays (defaults applied)."""
    resources = resolve(profile).resources
    return {
        "slug": profile.slug,
        "display_name": profile.display_name,
        "image": profile.image,
        "cpu_guarantee": resources.cpu_guarantee,
        "cpu_limit": resources.cpu_limit,
        "memory_guarantee": resources.memory_guarantee,
        "memory_limit": resources.memory_limit,
        "gpus": resources.gpus,
        "allowed_groups": list(profile.allowed_groups),
        "default": profile.default,
        "choices": {
            name: {"default": c.default, "options": list(c.options)} for name, c in profile.choices.items()
        },
    }


def _load_profile_file(path: Path, problems: list[str]) -> Profile | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        problems.append(f"{path}: (file): not readable YAML: {e}".replace("\n", " "))
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: (file): expected a mapping of profile keys, got {type(data).__name__}")
        return None
    try:
        profile = Profile.model_validate(data)
    except ValidationError as e:
        problems.extend(f"{path}: {line}" for line in describe_validation_error(e, Profile))
        return None
    bad_limits = limit_problems(profile)
    problems.extend(f"{path}: {line}" for line in bad_limits)
    return None if bad_limits else profile


def _base_overrides(profile: Profile) -> Overrides:
    return Overrides(
        cpu=profile.cpu,
        memory=profile.memory,
        gpus=profile.gpus,
        env=profile.env,
        node_selector=profile.node_selector,
        tolerations=profile.tolerations,
    )


def _merge(base: Overrides, top: Overrides) -> Overrides:
    """`env` merges key by key and bounds field by field; the rest replaces.

    Node selectors and tolerations replace rather than merge so that a
    "CPU only" option can take a GPU profile off the GPU node pool.
    """

    def bounds(a, b):
        if b is None:
            return a
        if a is None:
            return b
        return type(a)(
            guarantee=b.guarantee if b.guarantee is not None else a.guarantee,
            limit=b.limit if b.limit is not None else a.limit,
        )

    return Overrides(
        cpu=bounds(base.cpu, top.cpu),
        memory=bounds(base.memory, top.memory),
        gpus=top.gpus if top.gpus is not None else base.gpus,
        env={**(base.env or {}), **(top.env or {})},
        node_selector=top.node_selector if top.node_selector is not None else base.node_selector,
        tolerations=top.tolerations if top.tolerations is not None else base.tolerations,
    )


def _resources(o: Overrides) -> Resources:
    def number(bounds, key, parse):
        value = getattr(bounds, key) if bounds else None
        return None if value is None else parse(value)

    return Resources(
        cpu_guarantee=number(o.cpu, "guarantee", parse_cpu),
        cpu_limit=number(o.cpu, "limit", parse_cpu),
        memory_guarantee=number(o.memory, "guarantee", parse_memory),
        memory_limit=number(o.memory, "limit", parse_memory),
        gpus=o.gpus or 0,
    )


def limit_problems(profile: Profile) -> list[str]:
    """`key: reason` for every limit below its guarantee, the profile's and each option's."""
    base = _base_overrides(profile)
    variants = [("", base)] + [
        (f"choices.{name}.options.{option_name}.overrides.", _merge(base, option.overrides))
        for name, choice in profile.choices.items()
        for option_name, option in choice.options.items()
    ]
    problems = []
    for prefix, merged in variants:
        for key, bounds, parse in (("cpu", merged.cpu, parse_cpu), ("memory", merged.memory, parse_memory)):
            if bounds is None or bounds.guarantee is None or bounds.limit is None:
                continue
            if parse(bounds.limit) < parse(bounds.guarantee):
                problems.append(
                    f"{prefix}{key}: limit {bounds.limit!r} is below its guarantee {bounds.guarantee!r}"
                )
    return list(dict.fromkeys(problems))  # an option that changes nothing repeats the base's problem
