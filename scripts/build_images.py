#!/usr/bin/env python3
"""Build the curated images, all or the ones named, tagged by their content.

    python scripts/build_images.py [IMAGE ...] [--base REF|debootstrap]
        [--ca-bundle FILE] [--index-url URL] [--mirror URL] [--no-cuda --wheelhouse DIR]
        [--prefix analysis-hub/] [--tags-file build/image-tags.json] [--helm-values [FILE]]
        [--print-tags] [--report-sizes] [--force] [--start-engine]

Contract:
- Images: `base` (Debian, Python, jovyan, tini, start hooks, the activity
  policy), the notebook images built FROM it (every `images/<name>/` with an
  `image.yaml`: today `pyspark`, `pytorch`, `tensorflow`), and
  `hub` (the Kubernetes hub image) and `proxy` (configurable-http-proxy for the
  chart's proxy pod, where its default image can't be pulled). Naming any image
  builds `base` first.
- Tags are content addresses: `<prefix><name>:<12 hex>`, the SHA-256 of the
  build context (the Dockerfile, lock files, hooks, helpers, for `base` the
  server extension from hub/analysis_hub/singleuser, and for the notebook
  images the JupyterLab extension's wheel that `make lab` built), the FROM image's id and
  the build arguments. Same inputs, same tag; an image whose tag exists is not
  built again. The in-image tests (images/<name>/tests) are not part of it.
- `--base` is the FROM of `base`: a public slim Debian image by default, or
  `debootstrap` to build one from Debian packages (scripts/build-base-image.sh)
  where no registry is reachable.
- `--ca-bundle` (re-signed TLS) and `--index-url` (an internal mirror) reach
  apt and pip in the build as BuildKit secrets: nothing is left in a layer.
  pip's wheel cache is a BuildKit cache mount, kept between builds.
- An image whose image.yaml says `cuda: true` (pytorch) is built with CUDA
  (torch plus requirements-cuda.txt) unless
  `--no-cuda`, which needs `--wheelhouse` holding a CPU build of torch.
- The tags are written to `--tags-file` (JSON, image name -> tag; the docker
  backend and the tests read it) and, with `--helm-values`, into the chart's
  values (see `helm_values.py`).

Needs Debian's docker.io client (/usr/bin/docker, BuildKit without buildx)
and a running engine. Exit status 1 with the failing build's output tail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES_DIR = REPO / "images"
PUBLIC_BASE = "debian:bookworm-slim"
DEBOOTSTRAP = "debootstrap"
DEFAULT_PREFIX = "analysis-hub/"
DEFAULT_TAGS_FILE = REPO / "build" / "image-tags.json"
SINGLEUSER_FILES = (
    "analysis_hub_activity.py",
    "analysis_hub_activity.json",
    "analysis_hub_outputs.py",
    "analysis_hub_quiet.py",
    "analysis_hub_server.json",
    "ipython_kernel_config.json",
    "overrides.json",
)
# Not in a build context: tests run against the image, and image.yaml is read by the
# hub, the build and the chart, not by anything inside the image (so it never changes a tag).
SKIPPED = {"tests", "__pycache__", ".pytest_cache", "image.yaml"}

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Debian's client first: it has BuildKit built in; a newer client without buildx does not.
from docker_engine import docker_command, ensure_engine  # noqa: E402  (scripts/ is not a package)

# The package needn't be installed to build its images.
sys.path.insert(0, str(REPO / "hub"))
from analysis_hub.images import IMAGE_FILE, ImageFacts, discover_images  # noqa: E402
from analysis_hub.runtime.lab_extension import built_wheel  # noqa: E402


def build_order(images_dir: Path = IMAGES_DIR) -> tuple[str, ...]:
    """Every image this build makes, in order: base, the notebook images (each folder with an
    image.yaml), the hub, the proxy."""
    return ("base", *discover_images(images_dir), "hub", "proxy")


ALL_IMAGES = build_order()

# ---- build contexts and their content addresses (no Docker involved) -------


def _copy_tree(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*SKIPPED, "*.pyc"), dirs_exist_ok=True)


def stage_context(name: str, dest: Path, wheelhouse: Path | None = None, lock_names: set[str] = frozenset()):
    """Lay out image `name`'s build context in `dest` (which must exist)."""
    _copy_tree(IMAGES_DIR / name, dest)
    if name == "base":
        (dest / "singleuser").mkdir()
        for file in SINGLEUSER_FILES:
            shutil.copy2(REPO / "hub" / "analysis_hub" / "singleuser" / file, dest / "singleuser" / file)
    if name in discover_images(IMAGES_DIR):
        # Every notebook image installs the JupyterLab extension's wheel (`make lab`).
        wheel = built_wheel(REPO)
        if wheel is None:
            raise SystemExit("the JupyterLab extension is not built: run `make lab` (lab-extension/dist/)")
        (dest / "lab").mkdir()
        shutil.copy2(wheel, dest / "lab" / wheel.name)
    if _facts(name).cuda:
        # The Dockerfile copies this folder; it holds wheels only for a CPU build.
        (dest / "wheelhouse").mkdir()
        for wheel in sorted(wheelhouse.glob("*.whl")) if wheelhouse else []:
            if wheel.name.split("-")[0].lower().replace("_", "-") in lock_names:
                shutil.copy2(wheel, dest / "wheelhouse" / wheel.name)
    if name == "hub":
        package = dest / "package"
        package.mkdir()
        for file in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / file, package / file)
        for folder in ("hub", "profiles"):
            _copy_tree(REPO / folder, package / folder)
        # The hub checks the catalog's image names against image.yaml; its environments' lock files.
        for image in discover_images(IMAGES_DIR):
            (package / "images" / image).mkdir(parents=True)
            for lock in [IMAGES_DIR / image / IMAGE_FILE, *(IMAGES_DIR / image).glob("requirements*.txt")]:
                shutil.copy2(lock, package / "images" / image / lock.name)


def _facts(name: str):
    return discover_images(IMAGES_DIR).get(name) or ImageFacts(name)


def locked_names(image: str) -> set[str]:
    """Project names pinned in an image's lock files (to pick wheels from a wheelhouse)."""
    names = set()
    for lock in (IMAGES_DIR / image).glob("requirements*.txt"):
        for line in lock.read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                names.add(line.split("==")[0].strip().lower().replace("_", "-"))
    return names


def context_digest(context: Path, from_image_id: str, build_args: dict[str, str]) -> str:
    """SHA-256 over every file (path, executable bit, bytes), the FROM image id and the arguments."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        relative = path.relative_to(context).as_posix()
        executable = "x" if os.access(path, os.X_OK) else "-"
        digest.update(f"{relative}\0{executable}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    digest.update(f"from\0{from_image_id}\0".encode())
    for key, value in sorted(build_args.items()):
        digest.update(f"arg\0{key}={value}\0".encode())
    return digest.hexdigest()


def image_tag(prefix: str, name: str, digest: str, variant: str = "") -> str:
    return f"{prefix}{name}:{digest[:12]}{variant}"


def pip_config(index_url: str) -> str:
    """The pip.conf passed as the `pipconf` secret."""
    return f"[global]\nindex-url = {index_url}\n"


# ---- Docker -----------------------------------------------------------------


def image_id(reference: str) -> str | None:
    result = subprocess.run(
        [docker_command(), "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_from_image(reference: str) -> str:
    found = image_id(reference)
    if found:
        return found
    print(f"pulling {reference}", file=sys.stderr)
    pulled = subprocess.run([docker_command(), "pull", reference], capture_output=True, text=True)
    if pulled.returncode != 0:
        raise SystemExit(
            f"cannot pull base image {reference}: {pulled.stderr.strip()}\n"
            "Without a reachable registry, build one from Debian packages: --base debootstrap"
        )
    return image_id(reference)


def debootstrap_base(mirror: str | None, ca_bundle: Path | None) -> str:
    command = [str(REPO / "scripts" / "build-base-image.sh")]
    if mirror:
        command += ["--mirror", mirror]
    if ca_bundle:
        command += ["--ca-bundle", str(ca_bundle)]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building the debootstrap base failed (exit {result.returncode})")
    return "analysis-hub/debian:bookworm"


def docker_build(context: Path, tag: str, build_args: dict[str, str], secrets: dict[str, Path]) -> None:
    command = [docker_command(), "build", "--progress=plain", "--network=host", "--tag", tag]
    for key, value in sorted(build_args.items()):
        command += ["--build-arg", f"{key}={value}"]
    for secret_id, path in sorted(secrets.items()):
        command += ["--secret", f"id={secret_id},src={path}"]
    command.append(str(context))
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    log_path = Path(tempfile.mkstemp(prefix="build-", suffix=".log")[1])
    with log_path.open("w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-6000:]
        raise SystemExit(f"building {tag} failed (full log: {log_path}):\n{tail}")
    log_path.unlink()


def build_image(name: str, from_ref: str, options, secrets: dict[str, Path]) -> tuple[str, bool]:
    """Build one image unless its content tag exists. Returns (tag, built)."""
    from_id = ensure_from_image(from_ref) if name == "base" else image_id(from_ref)
    build_args = {"BASE": from_ref}
    variant = ""
    if _facts(name).cuda:
        build_args["CUDA"] = "1" if options.cuda else "0"
        variant = "" if options.cuda else "-cpu"
    with tempfile.TemporaryDirectory(prefix=f"context-{name}-") as tmp:
        context = Path(tmp)
        wheelhouse = None if options.cuda else options.wheelhouse
        stage_context(name, context, wheelhouse, locked_names(name))
        # The FROM reference is in the digest as the image id: a rebuilt base changes every tag.
        digest = context_digest(context, from_id, {k: v for k, v in build_args.items() if k != "BASE"})
        tag = image_tag(options.prefix, name, digest, variant)
        if image_id(tag) and not options.force:
            return tag, False
        started = time.monotonic()
        print(f"building {tag}", file=sys.stderr)
        docker_build(context, tag, build_args, secrets)
        print(f"built {tag} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return tag, True


def report_sizes(tags: dict[str, str]) -> str:
    """A Markdown table: each image's uncompressed size and `docker save | gzip | wc -c` (slow: minutes)."""
    rows = ["| image | tag | uncompressed | docker save \\| gzip |", "|---|---|---:|---:|"]
    for name, tag in tags.items():
        size = int(docker_output("image", "inspect", "--format", "{{.Size}}", tag))
        save = subprocess.Popen([docker_command(), "save", tag], stdout=subprocess.PIPE)
        gzip = subprocess.Popen(["gzip", "-c"], stdin=save.stdout, stdout=subprocess.PIPE)
        gzipped = sum(len(chunk) for chunk in iter(partial(gzip.stdout.read, 1 << 20), b""))
        save.wait()
        gzip.wait()
        rows.append(f"| {name} | `{tag}` | {size / 1e9:.2f} GB | {gzipped / 1e9:.2f} GB |")
    return "\n".join(rows)


def docker_output(*args: str) -> str:
    result = subprocess.run([docker_command(), *args], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def write_tags(tags_file: Path, tags: dict[str, str]) -> None:
    """Merge into the file, so that building one image keeps the others' tags."""
    current = json.loads(tags_file.read_text()) if tags_file.is_file() else {}
    current.update(tags)
    tags_file.parent.mkdir(parents=True, exist_ok=True)
    tags_file.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", metavar="IMAGE", help=f"default: all of {', '.join(ALL_IMAGES)}")
    parser.add_argument("--base", default=PUBLIC_BASE, help="FROM of the base image, or 'debootstrap'")
    parser.add_argument("--mirror", help="Debian mirror for --base debootstrap")
    parser.add_argument("--ca-bundle", type=Path, help="extra CA certificates for apt and pip (a secret)")
    parser.add_argument("--index-url", help="Python package index (an internal mirror); passed as a secret")
    parser.add_argument(
        "--no-cuda",
        dest="cuda",
        action="store_false",
        help="CUDA images (image.yaml cuda: true) without CUDA",
    )
    parser.add_argument("--wheelhouse", type=Path, help="folder of wheels (a CPU torch) for --no-cuda")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="repository prefix of the tags")
    parser.add_argument("--tags-file", type=Path, default=DEFAULT_TAGS_FILE)
    parser.add_argument("--helm-values", nargs="?", const="", default=None, metavar="FILE",
                        help="write the tags into the chart's values (see helm_values.py)")  # fmt: skip
    parser.add_argument("--print-tags", action="store_true", help="print the tags as JSON")
    parser.add_argument("--force", action="store_true", help="build even when the tag exists")
    parser.add_argument("--report-sizes", action="store_true", help="print sizes, uncompressed and gzipped")
    parser.add_argument("--start-engine", action="store_true", help="start dockerd when none answers")
    options = parser.parse_args(argv)
    unknown = sorted(set(options.images) - set(ALL_IMAGES))
    if unknown:
        parser.error(f"unknown image {unknown[0]!r} (images: {', '.join(ALL_IMAGES)})")
    if not options.cuda and not options.wheelhouse:
        parser.error("--no-cuda needs --wheelhouse DIR holding a CPU build of torch")
    if options.ca_bundle and not options.ca_bundle.is_file():
        parser.error(f"--ca-bundle {options.ca_bundle}: no such file")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    names = [n for n in ALL_IMAGES if n in (options.images or ALL_IMAGES) or n == "base"]
    if options.start_engine:
        ensure_engine()
    base_from = options.base
    if base_from == DEBOOTSTRAP:
        base_from = debootstrap_base(options.mirror, options.ca_bundle)
    tags: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="build-secrets-") as tmp:
        secrets = {}
        if options.ca_bundle:
            secrets["ca"] = options.ca_bundle.resolve()
        if options.index_url:
            secrets["pipconf"] = Path(tmp) / "pip.conf"
            secrets["pipconf"].write_text(pip_config(options.index_url))
        for name in names:
            from_ref = base_from if name == "base" else tags["base"]
            tags[name], built = build_image(name, from_ref, options, secrets)
            if not built:
                print(f"{tags[name]} is up to date", file=sys.stderr)
    write_tags(options.tags_file, tags)
    if options.helm_values is not None:
        sys.path.insert(0, str(Path(__file__).parent))
        from helm_values import write_image_tags

        print(write_image_tags(tags, Path(options.helm_values) if options.helm_values else None))
    if options.print_tags:
        print(json.dumps(tags, indent=2, sort_keys=True))
    if options.report_sizes:
        print(report_sizes(tags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
