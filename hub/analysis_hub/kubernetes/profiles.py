"""Profile -> KubeSpawner `profile_list` entries: a pure translation of the shared catalog.

Contract:
- `pod_override(resolved, cluster)` is the complete `kubespawner_override` for
  a resolved profile: image reference, CPU and memory bounds, the GPU limit,
  node selector, tolerations, env, and volumes (memory-backed /dev/shm for GPU
  profiles; the Hadoop client configuration where the image uses it).
- `profile_list_entries(profiles, cluster)` builds KubeSpawner's
  `profile_list`: each profile with its default choices applied, and each
  choice option as a `profile_options` choice whose override turns the
  profile's defaults into that option's resolved settings.
- `ClusterFacts` says what the cluster provides (image references, the
  Hadoop ConfigMap); it comes from settings and is passed in, so all of this
  stays pure and unit-testable by dict equality.

Two KubeSpawner rules shape the output. List overrides such as `tolerations`
replace the spawner's list instead of merging, so every entry repeats the
chart's own user-pod tolerations. Dict overrides merge, so an option that drops
a key (a CPU-only option leaving the GPU node pool) sets it to None, which
KubeSpawner treats as removal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog import Profile, ResolvedProfile, resolve

GPU_RESOURCE = "nvidia.com/gpu"
HADOOP_CONF_DIR = "/etc/hadoop/conf"
# What the Zero to JupyterHub chart puts on user pods (scheduling.userPods.tolerations).
CHART_USER_TOLERATIONS = (
    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
    {"key": "hub.jupyter.org_dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},
)


@dataclass(frozen=True)
class ClusterFacts:
    images: dict[str, str]  # catalog image name -> pullable reference (registry/name:tag or @digest)
    hadoop_configmap: str | None = None
    hadoop_images: tuple[str, ...] = ("pyspark",)
    extra: dict = field(default_factory=dict)


def image_reference(image: str, cluster: ClusterFacts) -> str:
    try:
        return cluster.images[image]
    except KeyError:
        known = ", ".join(sorted(cluster.images)) or "none"
        raise ValueError(f"kubernetes.images has no reference for image {image!r} (known: {known})") from None


def pod_override(resolved: ResolvedProfile, cluster: ClusterFacts) -> dict:
    r = resolved.resources
    env = dict(resolved.env)
    volumes, mounts = [], []
    if r.gpus:
        # PyTorch's DataLoader workers share tensors through /dev/shm; the 64 MiB default is too small.
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    if cluster.hadoop_configmap and resolved.image in cluster.hadoop_images:
        volumes.append({"name": "hadoop-conf", "configMap": {"name": cluster.hadoop_configmap}})
        mounts.append({"name": "hadoop-conf", "mountPath": HADOOP_CONF_DIR, "readOnly": True})
        env["HADOOP_CONF_DIR"] = HADOOP_CONF_DIR
    return {
        "image": image_reference(resolved.image, cluster),
        "cpu_guarantee": r.cpu_guarantee,
        "cpu_limit": r.cpu_limit,
        "mem_guarantee": r.memory_guarantee,
        "mem_limit": r.memory_limit,
        "extra_resource_limits": {GPU_RESOURCE: r.gpus} if r.gpus else {},
        "node_selector": dict(resolved.node_selector),
        "tolerations": [
            *CHART_USER_TOLERATIONS,
            *(t.model_dump(exclude_none=True) for t in resolved.tolerations),
        ],
        "environment": env,
        "volumes": volumes,
        "volume_mounts": mounts,
    }


def profile_list_entries(
    profiles: list[Profile], cluster: ClusterFacts, default_slug: str | None = None
) -> list[dict]:
    entries = []
    for profile in profiles:
        base = pod_override(resolve(profile), cluster)
        entry = {
            "slug": profile.slug,
            "display_name": profile.display_name,
            "description": profile.description,
            "default": profile.slug == default_slug,
            "kubespawner_override": base,
        }
        if profile.choices:
            entry["profile_options"] = {
                name: {
                    "display_name": choice.display_name,
                    "choices": {
                        option_name: {
                            "display_name": option.display_name,
                            "default": option_name == choice.default,
                            "kubespawner_override": _difference(
                                base, pod_override(resolve(profile, {name: option_name}), cluster)
                            ),
                        }
                        for option_name, option in choice.options.items()
                    },
                }
                for name, choice in profile.choices.items()
            }
        entries.append(entry)
    if entries and not any(e["default"] for e in entries):
        entries[0]["default"] = True
    return entries


def _difference(base: dict, target: dict) -> dict:
    """The override that turns `base` into `target` under KubeSpawner's merge rules."""
    override = {}
    for key, value in target.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            changed = {k: v for k, v in value.items() if base[key].get(k) != v}
            changed.update({k: None for k in base[key] if k not in value})  # None removes the key
            if changed:
                override[key] = changed
        elif base.get(key) != value:
            override[key] = value
    return override
