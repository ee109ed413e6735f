"""Write the images' content tags into the Helm chart's values, in place, comments kept.

Contract: `write_image_tags(tags, values_path)` sets, in
helm/analysis-hub/values.yaml (or `values_path`):
- `images.<name>` for each notebook image (`images/<name>/image.yaml`): the chart's repository is kept and
  only its tag is replaced (`ghcr.io/acme/pyspark:0.1.0` -> `...:<content tag>`);
- `jupyterhub.hub.image.tag`: the hub image's tag;
- `jupyterhub.singleuser.image.tag`: the tag of the image z2jh falls back to
  (the image whose name ends `singleuser.image.name`).
Only those scalars change; every other line, comment and quote style stays
as it was (a small line editor: the file is the chart author's, not a dump).
A key missing from the file is reported, not added. When the values file
does not exist, the tags go to `image-tags.yaml` beside it, a values file to
pass with `-f`. Returns a summary line for each change.

Pushing the images to the chart's registry under those tags is a separate
step (docker tag + docker push); no registry is reachable from these machines.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hub"))
from analysis_hub.images import discover_images

DEFAULT_VALUES = Path(__file__).resolve().parent.parent / "helm" / "analysis-hub" / "values.yaml"
IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
_KEY_LINE = re.compile(
    r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.-]+):(?P<sep>\s*)(?P<value>.*?)(?P<comment>\s+#.*)?$"
)


def tag_of(reference: str) -> str:
    return reference.rsplit(":", 1)[1]


def _retag(reference: str):
    """old `repo:tag` -> the same repo with `reference`'s tag."""
    return lambda old: f"{old.rsplit(':', 1)[0]}:{tag_of(reference)}"


def _tag(reference: str):
    return lambda old: tag_of(reference)


def _scalars(lines: list[str]):
    """(line index, dotted path, value text) for every `key: value` line of block-style YAML."""
    stack: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")):
            continue
        match = _KEY_LINE.match(line.rstrip("\n"))
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        yield index, ".".join(key for _, key in stack), match


def set_scalars(text: str, updates: dict[str, callable]) -> tuple[str, list[str], list[str]]:
    """Apply `path -> (old value -> new value)` to the scalars found; returns (text, changes, missing)."""
    lines = text.splitlines(keepends=True)
    changes, found = [], set()
    for index, path, match in list(_scalars(lines)):
        if path not in updates or not match["value"]:
            continue
        found.add(path)
        old = match["value"]
        quote = old[0] if old[0] in "'\"" else ""
        new = updates[path](old.strip("'\""))
        if new == old.strip("'\""):
            continue
        ending = "\n" if lines[index].endswith("\n") else ""
        comment = match["comment"] or ""
        lines[index] = f"{match['indent']}{match['key']}:{match['sep']}{quote}{new}{quote}{comment}{ending}"
        changes.append(f"{path}: {old.strip(quote)} -> {new}")
    return "".join(lines), changes, sorted(set(updates) - found)


def write_image_tags(
    tags: dict[str, str], values_path: Path | None = None, images_dir: Path = IMAGES_DIR
) -> str:
    values_path = values_path or DEFAULT_VALUES
    notebook_images = list(discover_images(images_dir))
    if not values_path.is_file():
        target = values_path.parent / "image-tags.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        overlay = {"images": {name: tags[name] for name in notebook_images if name in tags}}
        if "hub" in tags:
            overlay["jupyterhub"] = {"hub": {"image": {"tag": tag_of(tags["hub"])}}}
        target.write_text(
            "# Written by scripts/build_images.py --helm-values: pass with -f after values.yaml.\n"
            + yaml.safe_dump(overlay, sort_keys=True)
        )
        return f"{values_path} does not exist; wrote {target}"
    text = values_path.read_text()
    current = yaml.safe_load(text) or {}
    updates = {}
    for name in notebook_images:
        if name in tags:
            updates[f"images.{name}"] = _retag(tags[name])
    if "hub" in tags:
        updates["jupyterhub.hub.image.tag"] = _tag(tags["hub"])
    singleuser = (current.get("jupyterhub") or {}).get("singleuser") or {}
    fallback = (singleuser.get("image") or {}).get("name", "")
    fallback_image = fallback.rsplit("/", 1)[-1]
    if fallback_image in tags:
        updates["jupyterhub.singleuser.image.tag"] = _tag(tags[fallback_image])
    new_text, changes, missing = set_scalars(text, updates)
    if new_text != text:
        values_path.write_text(new_text)
    report = [f"{values_path}: " + ("; ".join(changes) if changes else "tags already current")]
    report += [f"{values_path}: no {path} key to update" for path in missing]
    return "\n".join(report)
