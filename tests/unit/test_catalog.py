"""The profile catalog: loading, validation errors an admin can act on, and `resolve()`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from analysis_hub.catalog import (
    GPU_SHARED_MEMORY_WITHOUT_LIMIT,
    CatalogError,
    Profile,
    Resources,
    Toleration,
    load_catalog,
    profile_summary,
    resolve,
)
from unit_support import PROFILES

GiB = 2**30

MINIMAL = """\
slug: {slug}
display_name: {slug}
image: pyspark
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(catalog_dir: Path, images_dir: Path) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog_dir, images_dir)
    assert str(caught.value).startswith("invalid profile catalog:")
    return caught.value.problems


def lines_for(problems: list[str], path: Path) -> list[str]:
    return [p for p in problems if p.startswith(f"{path}: ")]


# ---- the repository's catalog ------------------------------------------------


def test_repo_profiles_load(repo_catalog):
    """The checked-in profiles/ folder is a valid catalog with pyspark as the default."""
    assert [p.slug for p in repo_catalog.profiles] == ["pyspark", "pytorch", "tensorflow"]
    assert repo_catalog.default.slug == "pyspark"
    assert repo_catalog.files["pytorch"] == str(PROFILES / "pytorch.yaml")
    assert repo_catalog.get("tensorflow").image == "tensorflow"
    assert repo_catalog.get("nope") is None


def test_schema_json_is_the_models_export():
    """profiles/schema.json equals Profile.model_json_schema() (regenerate: analysis-hub profiles schema)."""
    exported = json.loads(json.dumps(Profile.model_json_schema()))
    checked_in = json.loads((PROFILES / "schema.json").read_text())
    assert checked_in == exported, "run `analysis-hub profiles schema > profiles/schema.json`"


def test_copied_catalog_loads(catalog_dirs):
    """The fixture's copy of the catalog is valid, so each invalid-catalog test fails for its own edit."""
    catalog = load_catalog(*catalog_dirs)
    assert {p.slug for p in catalog.profiles} == {"pyspark", "pytorch", "tensorflow"}


# ---- one test per kind of invalid input --------------------------------------


def test_unknown_key_lists_allowed_keys(catalog_dirs):
    """An unknown top-level key is reported with file, key, and the keys allowed there."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "extra.yaml", MINIMAL.format(slug="extra") + "imagee: pytorch\n")
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line.startswith(f"{path}: imagee: unknown key (allowed: ")
    allowed = line.split("(allowed: ")[1].rstrip(")").split(", ")
    assert allowed == sorted(Profile.model_fields)


def test_unknown_key_inside_choice_option_lists_override_keys(catalog_dirs):
    """An unknown key in a choice option's overrides names its dotted path and the override keys."""
    catalog_dir, images_dir = catalog_dirs
    path = write(
        catalog_dir,
        "extra.yaml",
        MINIMAL.format(slug="extra")
        + """\
choices:
  size:
    display_name: Size
    default: small
    options:
      small: {display_name: Small, overrides: {image: pytorch}}
""",
    )
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line == (
        f"{path}: choices.size.options.small.overrides.image: unknown key"
        " (allowed: cpu, env, gpus, memory, node_selector, tolerations)"
    )


@pytest.mark.parametrize("choice_name", ["default", "options", "display-name"])
def test_unknown_key_allowed_list_for_any_choice_name(catalog_dirs, choice_name):
    """The allowed-keys hint is right whatever the choice is called, even a name like a Choice field."""
    catalog_dir, images_dir = catalog_dirs
    path = write(
        catalog_dir,
        "extra.yaml",
        MINIMAL.format(slug="extra")
        + f"""\
choices:
  {choice_name}:
    display_name: Pick
    default: a
    options:
      a: {{display_name: A, overrides: {{image: pytorch}}}}
""",
    )
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line == (
        f"{path}: choices.{choice_name}.options.a.overrides.image: unknown key"
        " (allowed: cpu, env, gpus, memory, node_selector, tolerations)"
    )


def test_duplicate_slug(catalog_dirs):
    """Two files with one slug: the second is reported with the file the slug is already in."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "zz-copy.yaml", MINIMAL.format(slug="pyspark"))
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line == f"{path}: slug: duplicate slug 'pyspark' (also in {catalog_dir / 'pyspark.yaml'})"


@pytest.mark.parametrize(
    ("resource", "bounds", "reason"),
    [
        ("cpu", "{guarantee: 2, limit: 1}", "cpu: limit 1.0 is below its guarantee 2.0"),
        ("cpu", "{guarantee: 1000m, limit: 500m}", "cpu: limit '500m' is below its guarantee '1000m'"),
        ("memory", "{guarantee: 4Gi, limit: 2Gi}", "memory: limit '2Gi' is below its guarantee '4Gi'"),
        ("memory", "{guarantee: 2G, limit: 1Gi}", "memory: limit '1Gi' is below its guarantee '2G'"),
    ],
)
def test_limit_below_guarantee(catalog_dirs, resource, bounds, reason):
    """A profile whose cpu or memory limit is below its guarantee is reported with file, key and reason."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "low.yaml", MINIMAL.format(slug="low") + f"{resource}: {bounds}\n")
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert reason in line
    assert line.startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("resource", "base", "override", "reason"),
    [
        ("cpu", "{guarantee: 2, limit: 4}", "{limit: 1}", "cpu: limit 1.0 is below its guarantee 2.0"),
        (
            "memory",
            "{guarantee: 2Gi, limit: 4Gi}",
            "{guarantee: 8Gi}",
            "memory: limit '4Gi' is below its guarantee '8Gi'",
        ),
    ],
)
def test_limit_below_guarantee_inside_choice_option(catalog_dirs, resource, base, override, reason):
    """An option whose merged bounds put the limit below the guarantee is reported with its dotted path."""
    catalog_dir, images_dir = catalog_dirs
    path = write(
        catalog_dir,
        "low.yaml",
        MINIMAL.format(slug="low")
        + f"""\
{resource}: {base}
choices:
  size:
    display_name: Size
    default: ok
    options:
      ok: {{display_name: OK}}
      bad: {{display_name: Bad, overrides: {{{resource}: {override}}}}}
""",
    )
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert f"{path}: choices.size.options.bad.overrides.{resource}: limit" in line
    assert reason in line
    assert "options.ok" not in line


def test_every_limit_problem_in_a_file_is_reported(catalog_dirs):
    """A file with a bad cpu and a bad memory range gets one line for each, not just the first."""
    catalog_dir, images_dir = catalog_dirs
    path = write(
        catalog_dir,
        "low.yaml",
        MINIMAL.format(slug="low") + "cpu: {guarantee: 2, limit: 1}\nmemory: {guarantee: 4Gi, limit: 2Gi}\n",
    )
    lines = lines_for(problems_of(catalog_dir, images_dir), path)
    assert any(line.startswith(f"{path}: cpu: limit") for line in lines), lines
    assert any(line.startswith(f"{path}: memory: limit") for line in lines), lines


def test_unknown_image(catalog_dirs):
    """A profile naming an image without an images/<name>/image.yaml is reported with the known images."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "r.yaml", "slug: r\ndisplay_name: R\nimage: rstudio\n")
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line.startswith(
        f"{path}: image: unknown image 'rstudio': no {images_dir / 'rstudio' / 'image.yaml'}"
    )
    assert line.endswith("(known images: pyspark, pytorch, tensorflow)")


@pytest.mark.parametrize(
    ("snippet", "key", "reason"),
    [
        ("memory: {guarantee: 1Gi, limit: 16 GB}", "memory.limit", "'16 GB' is not a memory quantity"),
        ("memory: {guarantee: 1gb}", "memory.guarantee", "'1gb' is not a memory quantity"),
        ("cpu: {limit: 2 cores}", "cpu.limit", "'2 cores' is not a CPU quantity"),
        ("memory: {limit: -5}", "memory.limit", "-5 is negative"),
    ],
)
def test_bad_quantity(catalog_dirs, snippet, key, reason):
    """A quantity Kubernetes would not accept is reported with its dotted key and what is allowed."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "q.yaml", MINIMAL.format(slug="q") + snippet + "\n")
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line.startswith(f"{path}: {key}: {reason}")
    assert "such as" in line  # says what is allowed


def test_bad_quantity_inside_choice_option(catalog_dirs):
    """A bad quantity inside a choice option names the full dotted path of the option's key."""
    catalog_dir, images_dir = catalog_dirs
    path = write(
        catalog_dir,
        "q.yaml",
        MINIMAL.format(slug="q")
        + """\
choices:
  size:
    display_name: Size
    default: big
    options:
      big: {display_name: Big, overrides: {memory: {limit: 16 GB}}}
""",
    )
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line.startswith(f"{path}: choices.size.options.big.overrides.memory.limit: '16 GB' is not")


def test_invalid_yaml(catalog_dirs):
    """A file that is not YAML is reported as such, on one line, with its path."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "broken.yaml", "slug: broken\ncpu: {guarantee: 1\n")
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line.startswith(f"{path}: (file): not readable YAML: ")
    assert "\n" not in line


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "list"), ("just a string\n", "str"), ("", "NoneType")]
)
def test_non_mapping_file(catalog_dirs, text, kind):
    """A file whose YAML is not a mapping is reported with what it is instead."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "odd.yaml", text)
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line == f"{path}: (file): expected a mapping of profile keys, got {kind}"


def test_two_default_profiles(catalog_dirs):
    """Two profiles marked default are reported naming both."""
    catalog_dir, images_dir = catalog_dirs
    write(catalog_dir, "second.yaml", MINIMAL.format(slug="second") + "default: true\n")
    problems = problems_of(catalog_dir, images_dir)
    assert problems == [
        f"{catalog_dir}: default: only one profile may be the default;"
        f" set in {catalog_dir / 'pyspark.yaml'}, {catalog_dir / 'second.yaml'}"
    ]


def test_choice_default_not_an_option(catalog_dirs):
    """A choice whose default is not among its options is reported with the options."""
    catalog_dir, images_dir = catalog_dirs
    path = write(
        catalog_dir,
        "c.yaml",
        MINIMAL.format(slug="c")
        + """\
choices:
  size:
    display_name: Size
    default: huge
    options:
      small: {display_name: Small}
      large: {display_name: Large}
""",
    )
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line == f"{path}: choices.size: default 'huge' is not one of the options ['large', 'small']"


def test_missing_required_keys(catalog_dirs):
    """A profile without display_name and image gets one line per missing key."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "bare.yaml", "slug: bare\n")
    lines = lines_for(problems_of(catalog_dir, images_dir), path)
    assert sorted(line.split(": ")[1] for line in lines) == ["display_name", "image"]
    assert all("Field required" in line for line in lines)


def test_bad_slug(catalog_dirs):
    """A slug that is not lower-case letters, digits and '-' is reported with the value."""
    catalog_dir, images_dir = catalog_dirs
    path = write(catalog_dir, "s.yaml", MINIMAL.format(slug="My_Profile"))
    [line] = lines_for(problems_of(catalog_dir, images_dir), path)
    assert line.startswith(f"{path}: slug: String should match pattern")
    assert "'My_Profile'" in line


def test_empty_folder(tmp_path):
    """A folder without *.yaml files is refused, naming the folder."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "notes.txt").write_text("not a profile")
    problems = problems_of(tmp_path / "profiles", tmp_path)
    assert problems == [f"{tmp_path / 'profiles'}: no profile files (*.yaml) found"]


def test_missing_folder(tmp_path):
    """A catalog folder that does not exist is refused like an empty one."""
    assert problems_of(tmp_path / "nowhere", tmp_path) == [
        f"{tmp_path / 'nowhere'}: no profile files (*.yaml) found"
    ]


def test_problems_from_every_file_are_reported_together(catalog_dirs):
    """Problems in several files all appear in one CatalogError, and nothing is returned."""
    catalog_dir, images_dir = catalog_dirs
    a = write(catalog_dir, "a.yaml", MINIMAL.format(slug="a") + "colour: red\n")
    b = write(catalog_dir, "b.yaml", "slug: b\ndisplay_name: B\nimage: missing\n")
    c = write(catalog_dir, "c.yaml", "[unclosed\n")
    problems = problems_of(catalog_dir, images_dir)
    assert len(problems) == 3
    assert all(lines_for(problems, path) for path in (a, b, c))


# ---- resolve() ------------------------------------------------------------------


def test_resolve_defaults(repo_catalog):
    """Without choices, resolve() applies each choice's default option."""
    resolved = resolve(repo_catalog.get("pytorch"))
    assert resolved.choices == {"accelerator": "gpu"}
    assert resolved.slug == "pytorch" and resolved.image == "pytorch"
    assert resolved.resources.gpus == 1
    assert resolved.resources.cpu_guarantee == 2.0 and resolved.resources.cpu_limit == 4.0
    assert resolved.resources.memory_guarantee == 8 * GiB and resolved.resources.memory_limit == 16 * GiB
    assert resolved.node_selector == {"analysis-hub/node-pool": "gpu"}
    assert resolved.tolerations == [Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")]


def test_resolve_env_merges_key_by_key(repo_catalog):
    """A choice's env overrides its keys and keeps the profile's other keys."""
    resolved = resolve(repo_catalog.get("pyspark"), {"size": "large"})
    assert resolved.env == {
        "HADOOP_CONF_DIR": "/etc/hadoop/conf",
        "PYSPARK_SUBMIT_ARGS": "--driver-memory 12g pyspark-shell",
    }
    assert resolved.resources.cpu_limit == 4.0
    assert resolved.resources.memory_limit == 16 * GiB


def test_resolve_selectors_and_tolerations_replace(repo_catalog):
    """A choice's node_selector and tolerations replace the profile's (CPU option leaves the GPU pool)."""
    resolved = resolve(repo_catalog.get("pytorch"), {"accelerator": "cpu"})
    assert resolved.node_selector == {}
    assert resolved.tolerations == []
    assert resolved.resources.gpus == 0
    assert resolved.env == {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}


def test_resolve_bounds_merge_field_by_field():
    """An option setting only a limit keeps the profile's guarantee, and vice versa."""
    profile = Profile.model_validate(
        {
            "slug": "p",
            "display_name": "P",
            "image": "pyspark",
            "cpu": {"guarantee": 1, "limit": 2},
            "memory": {"guarantee": "1Gi", "limit": "2Gi"},
            "node_selector": {"pool": "a"},
            "choices": {
                "size": {
                    "display_name": "Size",
                    "default": "base",
                    "options": {
                        "base": {"display_name": "Base"},
                        "more": {
                            "display_name": "More",
                            "overrides": {"cpu": {"limit": "3"}, "memory": {"guarantee": "2Gi"}},
                        },
                    },
                }
            },
        }
    )
    resources = resolve(profile, {"size": "more"}).resources
    assert (resources.cpu_guarantee, resources.cpu_limit) == (1.0, 3.0)
    assert (resources.memory_guarantee, resources.memory_limit) == (2 * GiB, 2 * GiB)
    assert resolve(profile, {"size": "more"}).node_selector == {"pool": "a"}


def test_resolve_unknown_choice_names_the_choices(repo_catalog):
    """A choice the profile does not have is refused, naming the profile's choices."""
    with pytest.raises(ValueError, match=r"has no choice 'colour' \(choices: \['size'\]\)"):
        resolve(repo_catalog.get("pyspark"), {"colour": "red"})
    with pytest.raises(ValueError, match=r"has no choice 'size' \(choices: none\)"):
        resolve(repo_catalog.get("tensorflow"), {"size": "large"})


def test_resolve_unknown_option_names_the_options(repo_catalog):
    """An option not offered is refused, naming the allowed options."""
    with pytest.raises(ValueError) as caught:
        resolve(repo_catalog.get("pytorch"), {"accelerator": "tpu"})
    assert (
        str(caught.value)
        == "'tpu' is not an option of 'pytorch' choice 'accelerator' (options: cpu, gpu, gpu2)"
    )


def test_profile_summary(repo_catalog):
    """profile_summary shows the default option's numbers and the choices."""
    summary = profile_summary(repo_catalog.get("pyspark"))
    assert summary["cpu_guarantee"] == 1.0 and summary["memory_limit"] == 4 * GiB
    assert summary["default"] is True
    assert summary["choices"] == {"size": {"default": "medium", "options": ["medium", "large"]}}


def test_allowed_for_groups(catalog_dirs):
    """A profile with allowed_groups is visible only to members; others see the open profiles."""
    catalog_dir, images_dir = catalog_dirs
    write(catalog_dir, "secret.yaml", MINIMAL.format(slug="secret") + "allowed_groups: [gpu-team]\n")
    catalog = load_catalog(catalog_dir, images_dir)
    assert "secret" not in {p.slug for p in catalog.allowed_for(set())}
    assert "secret" in {p.slug for p in catalog.allowed_for({"gpu-team"})}
    assert len(catalog.allowed_for({"other"})) == 3


@pytest.mark.parametrize(
    ("gpus", "memory_limit", "expected"),
    [
        (0, 4 * 2**30, None),
        (0, None, None),
        (1, 32 * 2**30, 16 * 2**30),
        (2, None, GPU_SHARED_MEMORY_WITHOUT_LIMIT),
    ],
)
def test_shared_memory_rule(gpus, memory_limit, expected):
    """One /dev/shm rule for every backend: GPU servers get half their memory limit (a fixed size
    without one); CPU servers keep the runtime's default."""
    resources = Resources(
        cpu_guarantee=None, cpu_limit=None, memory_guarantee=None, memory_limit=memory_limit, gpus=gpus
    )
    assert resources.shared_memory == expected
