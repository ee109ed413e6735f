"""The curated images and what each needs, read from `images/<name>/image.yaml`.

Contract: `discover_images(images_dir)` returns every image that users'
servers and pipeline runs can use (a folder under `images/` holding an
`image.yaml`), with the capabilities it declares there. It is the one place
those facts live: the catalog check (which image names a profile may use),
every backend's translation (`hadoop_images`), the image build (which images
to build, which carry CUDA wheels) and the chart's image list all read it.
A fourth image is a folder with its Dockerfile, lock file and `image.yaml`;
no code names it. `base` and `hub` have no `image.yaml`: they are built, but
no profile can run them.

`image.yaml` keys (all optional, unknown keys refused):
- `hadoop_client`: the image is a Hadoop/Spark client; servers and runs get
  the Hadoop client configuration (and Kerberos) mounted at
  /etc/hadoop/conf.
- `cuda`: the image installs CUDA runtime wheels (`requirements-cuda.txt`);
  a CPU-only build needs `--no-cuda` and a wheelhouse.
- `display_name`: how the image is named in lists and kernels.

What every image shares (images/base, the Jupyter docker-stacks convention)
and where the hub puts things in a container are the constants below, which
both container backends' translations read (docker and Kubernetes), for
servers and pipeline steps alike: the user jovyan (`JOVYAN_UID`, with
`JOVYAN_GID` owning its volumes), its `HOME`, the Hadoop client
configuration at `HADOOP_CONF_DIR`, a pipeline step's working folder
`RUN_DIR` and a workflow run's shared folder `RUN_FOLDER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

IMAGE_FILE = "image.yaml"
JOVYAN_UID, JOVYAN_GID = 1000, 100
HOME = "/home/jovyan"
HADOOP_CONF_DIR = "/etc/hadoop/conf"
RUN_DIR = f"{HOME}/run"  # a pipeline step's working folder (its input, its output notebook)
RUN_FOLDER = f"{HOME}/run-folder"  # a workflow run's folder that all its steps share
_KEYS = {"hadoop_client": bool, "cuda": bool, "display_name": str}


@dataclass(frozen=True)
class ImageFacts:
    name: str
    hadoop_client: bool = False
    cuda: bool = False
    display_name: str = ""


class ImageDefinitionError(ValueError):
    """An `image.yaml` that can't be read; the message names the file and the key."""


def discover_images(images_dir: str | Path) -> dict[str, ImageFacts]:
    root = Path(images_dir)
    found = {}
    for path in sorted(root.glob(f"*/{IMAGE_FILE}")) if root.is_dir() else []:
        found[path.parent.name] = read_image_facts(path)
    return found


def read_image_facts(path: Path) -> ImageFacts:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ImageDefinitionError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict):
        raise ImageDefinitionError(f"{path}: must be a mapping of {', '.join(sorted(_KEYS))}")
    for key, value in data.items():
        if key not in _KEYS:
            raise ImageDefinitionError(f"{path}: {key}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
        if not isinstance(value, _KEYS[key]):
            raise ImageDefinitionError(f"{path}: {key}: must be a {_KEYS[key].__name__}, not {value!r}")
    return ImageFacts(name=path.parent.name, **data)


def hadoop_images(images: dict[str, ImageFacts]) -> frozenset[str]:
    return frozenset(name for name, facts in images.items() if facts.hadoop_client)
