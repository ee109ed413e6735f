"""Kernels named after their image: "PySpark (Spark 4, Java 17)", not "Python 3 (ipykernel)" (pure).

Contract: the kernel *name* stays `python3` everywhere (papermill, a
notebook's `kernelspec.name`, pipelines); its *display name* is the image's
`display_name` from `images/<name>/image.yaml` (`kernel_display_name`), so a
notebook records in `metadata.kernelspec.display_name` which environment it
was written in.
- Local environments: `named_kernelspec` is the environment's own
  `kernel.json` with that display name; the environment builder writes it
  after a build and at every reuse (the environment's key is unchanged, so
  built environments are reused).
- Images (docker, Kubernetes): no image is rebuilt. The server's command
  becomes `container_command(...)`: a few lines of the image's Python that,
  when `KERNEL_DISPLAY_NAME_ENV` is set, copy the image's own `python3`
  kernelspec with that display name into `CONTAINER_JUPYTER_PATH` (first on
  `JUPYTER_PATH`, so it wins over the image's), then exec the usual command.
  The images' entry point (tini, start hooks) still runs first.
  `container_kernel_env(display_name)` is what the translations add to the
  server's environment.
- `profile_for_kernel(profiles, display_name, images)`: the profile a
  notebook was written in, from its kernel's display name, so a pipeline
  published without naming a profile defaults to it; ambiguous or unknown
  names raise `ValueError` listing the profiles to choose from.
"""

from __future__ import annotations

from .images import ImageFacts

KERNEL_NAME = "python3"
KERNEL_DISPLAY_NAME_ENV = "ANALYSIS_HUB_KERNEL_DISPLAY_NAME"
CONTAINER_JUPYTER_PATH = "/tmp/analysis-hub-jupyter"
SERVER_COMMAND = ("jupyterhub-singleuser",)

# Runs as `python -c WRITE_KERNELSPEC <jupyter dir> <command...>` in the container, as its user.
WRITE_KERNELSPEC = (
    """
import glob, json, os, sys
name, target, command = os.environ.get(%r), sys.argv[1], sys.argv[2:]
if name:
    source = os.path.join(sys.prefix, "share", "jupyter", "kernels", %r)
    spec = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
    if os.path.isfile(os.path.join(source, "kernel.json")):
        with open(os.path.join(source, "kernel.json")) as f:
            spec = json.load(f)
    spec["display_name"] = name
    folder = os.path.join(target, "kernels", %r)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "kernel.json"), "w") as f:
        json.dump(spec, f, indent=1)
    for logo in glob.glob(os.path.join(source, "logo-*")):
        link = os.path.join(folder, os.path.basename(logo))
        if not os.path.lexists(link):
            os.symlink(logo, link)
os.execvp(command[0], command)
""".strip()
    % (KERNEL_DISPLAY_NAME_ENV, KERNEL_NAME, KERNEL_NAME)
)


def kernel_display_name(image: str, images: dict[str, ImageFacts]) -> str:
    """The image's display name, or its folder name where image.yaml gives none."""
    facts = images.get(image)
    return facts.display_name if facts and facts.display_name else image


def profile_for_kernel(profiles: list, display_name: str, images: dict[str, ImageFacts]) -> str:
    """The one profile among `profiles` whose image's kernel is `display_name`."""
    matching = sorted(p.slug for p in profiles if kernel_display_name(p.image, images) == display_name)
    if len(matching) == 1:
        return matching[0]
    allowed = ", ".join(sorted(p.slug for p in profiles)) or "none"
    if matching:
        raise ValueError(
            f"profile: the notebook's kernel {display_name!r} is the kernel of profiles"
            f" {', '.join(matching)}; name one"
        )
    raise ValueError(
        f"profile: the notebook's kernel {display_name!r} is no profile's; name a profile ({allowed})"
    )


def named_kernelspec(spec: dict, display_name: str) -> dict:
    """An environment's kernelspec with the image's display name; everything else kept."""
    return {**spec, "display_name": display_name}


def container_command(
    command: tuple[str, ...] = SERVER_COMMAND, jupyter_path: str = CONTAINER_JUPYTER_PATH
) -> list[str]:
    """The server's command in a container, naming the kernel first (see the module docstring)."""
    return ["python", "-c", WRITE_KERNELSPEC, jupyter_path, *command]


def container_kernel_env(display_name: str, jupyter_path: str = CONTAINER_JUPYTER_PATH) -> dict[str, str]:
    return {KERNEL_DISPLAY_NAME_ENV: display_name, "JUPYTER_PATH": jupyter_path}
