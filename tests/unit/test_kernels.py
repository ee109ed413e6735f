"""Kernels are named after their image: local environments (patched in place, same key) and
containers (the wrapped server command, run here for real with this interpreter)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import nbformat
import pytest
from analysis_hub.images import discover_images
from analysis_hub.kernels import (
    KERNEL_DISPLAY_NAME_ENV,
    container_command,
    container_kernel_env,
    kernel_display_name,
    profile_for_kernel,
)
from analysis_hub.pipelines.publishing.notebooks import kernel_name, notebook_parameters
from analysis_hub.runtime.environments import READY_MARKER, EnvironmentBuilder
from unit_support import IMAGES

IPYKERNEL_SPEC = {
    "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "metadata": {"debugger": True},
}


def test_every_image_names_its_kernel_in_image_yaml():
    """The names users see in the launcher come from images/<name>/image.yaml."""
    images = discover_images(IMAGES)
    assert {name: kernel_display_name(name, images) for name in images} == {
        "pyspark": "PySpark (Spark 4, Java 17)",
        "pytorch": "PyTorch (CUDA)",
        "tensorflow": "TensorFlow",
    }


def test_a_built_environment_is_reused_with_its_kernel_named_after_the_image(tmp_path):
    """An environment built before kernels were named keeps its key (no rebuild) and its
    ipykernel spec gets the image's display name, everything else unchanged."""
    builder = EnvironmentBuilder(tmp_path / "envs", IMAGES, sys.executable)
    env = builder.path_for("pyspark")
    (env / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    spec_file = env / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    spec_file.parent.mkdir(parents=True)
    spec_file.write_text(json.dumps(IPYKERNEL_SPEC))
    (env / READY_MARKER).write_text("built earlier\n")

    assert asyncio.run(builder.ensure("pyspark")) == env
    assert json.loads(spec_file.read_text()) == {
        **IPYKERNEL_SPEC,
        "display_name": "PySpark (Spark 4, Java 17)",
    }
    assert (env / READY_MARKER).read_text() == "built earlier\n", "the environment was not rebuilt"


def test_the_container_command_names_the_kernel_then_runs_the_server_command(tmp_path):
    """The wrapped command copies the interpreter's own python3 kernelspec (logos included) with the
    image's display name onto JUPYTER_PATH, where Jupyter finds it first; then execs the command."""
    jupyter_path = str(tmp_path / "jupyter")
    command = container_command((sys.executable, "-c", "print('the server ran')"), jupyter_path)
    command[0] = sys.executable  # the image's `python`
    env = {**os.environ, **container_kernel_env("PySpark (Spark 4, Java 17)", jupyter_path)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert result.stdout == "the server ran\n"

    # What the server sees: Jupyter's own lookup, with the environment the server gets.
    lookup = (
        "import json; from jupyter_client.kernelspec import KernelSpecManager\n"
        "s = KernelSpecManager().get_kernel_spec('python3')\n"
        "print(json.dumps([s.display_name, s.language, s.argv[1:3], s.resource_dir]))"
    )
    found = subprocess.run(
        [sys.executable, "-c", lookup], env=env, capture_output=True, text=True, check=True
    )
    display_name, language, launcher, resource_dir = json.loads(found.stdout)
    assert (display_name, language, launcher) == (
        "PySpark (Spark 4, Java 17)",
        "python",
        ["-m", "ipykernel_launcher"],
    )
    assert sorted(os.listdir(resource_dir)) == [
        "kernel.json",
        "logo-32x32.png",
        "logo-64x64.png",
        "logo-svg.svg",
    ]


def test_without_a_display_name_the_container_command_only_runs_the_server(tmp_path):
    jupyter_path = tmp_path / "jupyter"
    command = container_command((sys.executable, "-c", "print('ran')"), str(jupyter_path))
    command[0] = sys.executable
    env = {k: v for k, v in os.environ.items() if k != KERNEL_DISPLAY_NAME_ENV}
    assert subprocess.run(command, env=env, capture_output=True, text=True).stdout == "ran\n"
    assert not jupyter_path.exists()


def test_a_notebook_written_in_a_named_kernel_still_runs_as_python3():
    """Pipelines read the kernel *name* (python3) from a notebook, whatever its display name."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "PyTorch (CUDA)", "language": "python"}
    cell = nbformat.v4.new_code_cell("n = 3")
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    assert kernel_name(nb) == "python3"
    assert notebook_parameters(nb)["n"].default == 3


def test_a_notebook_defaults_to_the_profile_its_kernel_names(repo_catalog):
    """A pipeline published without a profile gets the one whose image's kernel the notebook was
    written in; an unknown or shared kernel name is refused listing the profiles to choose from."""
    images = discover_images(IMAGES)
    profiles = list(repo_catalog.profiles)
    assert profile_for_kernel(profiles, "PySpark (Spark 4, Java 17)", images) == "pyspark"
    assert profile_for_kernel(profiles, "PyTorch (CUDA)", images) == "pytorch"
    with pytest.raises(
        ValueError, match=r"'Python 3 \(ipykernel\)' is no profile's; name a profile \(pyspark"
    ):
        profile_for_kernel(profiles, "Python 3 (ipykernel)", images)
    tiny = profiles[0].model_copy(update={"slug": "tiny"})
    with pytest.raises(ValueError, match="is the kernel of profiles pyspark, tiny; name one"):
        profile_for_kernel([*profiles, tiny], "PySpark (Spark 4, Java 17)", images)
