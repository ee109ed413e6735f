"""The image definitions and scripts/build_images.py, without a Docker engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

import pytest
import yaml
from unit_support import IMAGES, REPO

sys.path.insert(0, str(REPO / "scripts"))

import build_images

CURATED = ("pyspark", "pytorch", "tensorflow")


def staged(tmp_path, name, **kwargs):
    context = tmp_path / name
    context.mkdir(parents=True)
    build_images.stage_context(name, context, **kwargs)
    return context


def test_same_inputs_same_tag_and_any_change_a_new_one(tmp_path):
    """The tag is a content address: the files, their executable bits, the FROM image id and the args."""
    context = staged(tmp_path, "pyspark")
    digest = build_images.context_digest(context, "sha256:base", {})
    assert digest == build_images.context_digest(staged(tmp_path / "again", "pyspark"), "sha256:base", {})
    assert build_images.context_digest(context, "sha256:other", {}) != digest
    assert build_images.context_digest(context, "sha256:base", {"CUDA": "0"}) != digest
    hook = context / "start-notebook.d" / "30-spark-client-mode.sh"
    hook.chmod(0o755)
    assert build_images.context_digest(context, "sha256:base", {}) != digest
    hook.chmod(0o644)
    (context / "requirements.txt").write_text("pyspark==4.3.1\n")
    assert build_images.context_digest(context, "sha256:base", {}) != digest
    assert build_images.image_tag("analysis-hub/", "pyspark", digest) == f"analysis-hub/pyspark:{digest[:12]}"


def test_in_image_tests_are_not_part_of_the_tag(tmp_path):
    context = staged(tmp_path, "pyspark")
    assert not (context / "tests").exists()
    assert (context / "Dockerfile").is_file() and (context / "requirements.txt").is_file()


def test_base_carries_the_same_server_extension_as_the_local_backend(tmp_path):
    context = staged(tmp_path, "base")
    for name in build_images.SINGLEUSER_FILES:
        source = REPO / "hub" / "analysis_hub" / "singleuser" / name
        assert (context / "singleuser" / name).read_bytes() == source.read_bytes()


def test_hub_context_carries_the_package_catalog_and_image_folders(tmp_path):
    context = staged(tmp_path, "hub")
    package = context / "package"
    assert (package / "pyproject.toml").is_file()
    assert (package / "hub" / "analysis_hub" / "backends" / "docker" / "spawner.py").is_file()
    assert sorted(p.name for p in (package / "profiles").glob("*.yaml")) == sorted(
        p.name for p in (REPO / "profiles").glob("*.yaml")
    )
    assert {p.name for p in (package / "images").iterdir()} == set(CURATED)
    assert not list(context.rglob("__pycache__"))


def test_cpu_wheelhouse_copies_only_locked_projects(tmp_path):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    for wheel in ("torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl", "unrelated-1.0-py3-none-any.whl"):
        (wheelhouse / wheel).write_bytes(b"")
    context = staged(
        tmp_path, "pytorch", wheelhouse=wheelhouse, lock_names=build_images.locked_names("pytorch")
    )
    assert [p.name for p in (context / "wheelhouse").iterdir()] == [
        "torch-2.13.0+cpu-cp311-cp311-linux_x86_64.whl"
    ]
    assert "torch" in build_images.locked_names("pytorch")


@pytest.mark.parametrize("image", CURATED)
def test_dockerfiles_install_the_lock_files_the_local_backend_installs(image):
    """One lock file per image: the Dockerfile copies requirements.txt and installs it with --no-deps."""
    dockerfile = (IMAGES / image / "Dockerfile").read_text()
    assert re.search(r"^COPY requirements\.txt", dockerfile, re.M)
    assert "install-python-lock /tmp/lock/requirements.txt" in dockerfile
    helper = (IMAGES / "base" / "build-helpers" / "install-python-lock").read_text()
    assert "--no-deps" in helper


def test_pytorch_defaults_to_cuda():
    dockerfile = (IMAGES / "pytorch" / "Dockerfile").read_text()
    assert "ARG CUDA=1" in dockerfile
    assert "/tmp/lock/requirements.txt /tmp/lock/requirements-cuda.txt" in dockerfile


@pytest.mark.parametrize("image", build_images.ALL_IMAGES)
def test_dockerfiles_are_hadolint_clean(image):
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(IMAGES / image / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("image", build_images.ALL_IMAGES)
def test_images_run_as_jovyan_not_root(image):
    users = re.findall(r"^USER (\S+)", (IMAGES / image / "Dockerfile").read_text(), re.M)
    assert users[-1] == "1000"


def test_hub_lock_covers_the_package_dependencies():
    """The hub image installs the package --no-deps on top of its lock: every dependency must be locked."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = build_images.locked_names("hub")
    missing = [d for d in declared if re.split(r"[<>=\[ ;]", d)[0].lower() not in locked]
    assert not missing, f"add to images/hub/requirements.in and run make lock: {missing}"


def test_index_url_becomes_a_pip_config_secret():
    assert (
        build_images.pip_config("https://pypi.corp/simple")
        == "[global]\nindex-url = https://pypi.corp/simple\n"
    )


def test_unknown_image_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_images.parse_args(["pyspork"])
    assert "unknown image 'pyspork'" in capsys.readouterr().err


VALUES = """\
# Catalog image name -> pullable reference.
images:
  pyspark: ghcr.io/acme/pyspark:0.1.0   # the default profile's
  pytorch: ghcr.io/acme/pytorch:0.1.0
  tensorflow: ghcr.io/acme/tensorflow:0.1.0
profiles:
  pyspark:
    image: pyspark
jupyterhub:
  hub:
    # Our hub image.
    image:
      name: ghcr.io/acme/hub
      tag: "0.1.0"
  singleuser:
    image:
      name: ghcr.io/acme/pyspark
      tag: '0.1.0'
"""
TAGS = {name: f"analysis-hub/{name}:{name[:2]}0123456789" for name in build_images.ALL_IMAGES}


def test_tags_go_into_the_chart_values_in_place(tmp_path):
    """Only the image tags change: the chart's registry, comments and quoting stay."""
    from helm_values import write_image_tags

    values = tmp_path / "values.yaml"
    values.write_text(VALUES)
    report = write_image_tags(TAGS, values)
    expected = (
        VALUES.replace("pyspark:0.1.0", "pyspark:py0123456789")
        .replace("pytorch:0.1.0", "pytorch:py0123456789")
        .replace("tensorflow:0.1.0", "tensorflow:te0123456789")
        .replace('tag: "0.1.0"', 'tag: "hu0123456789"')
        .replace("tag: '0.1.0'", "tag: 'py0123456789'")
    )
    assert values.read_text() == expected
    assert "jupyterhub.hub.image.tag: 0.1.0 -> hu0123456789" in report
    assert write_image_tags(TAGS, values).endswith("tags already current")


def test_without_a_values_file_the_tags_go_to_an_overlay(tmp_path):
    from helm_values import write_image_tags

    report = write_image_tags(TAGS, tmp_path / "chart" / "values.yaml")
    overlay = yaml.safe_load((tmp_path / "chart" / "image-tags.yaml").read_text())
    assert overlay["images"]["pytorch"] == TAGS["pytorch"]
    assert overlay["jupyterhub"]["hub"]["image"]["tag"] == "hu0123456789"
    assert "does not exist" in report
