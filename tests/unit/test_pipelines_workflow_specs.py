"""Publishing a workflow (pipelines.versions.publish_workflow, pipelines.workflow): pipeline.yaml and
its notebooks checked against the repository's real profiles (pyspark, tensorflow, pytorch), every
bad spec refused with a message naming pipeline.yaml, the step and the key, and nothing published."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from analysis_hub.pipelines.access import NotFound
from analysis_hub.pipelines.publishing.notebooks import NotebookError
from analysis_hub.pipelines.publishing.specs import SpecError
from analysis_hub.pipelines.store.models import Pipeline, Version
from notebooks import make_notebook
from pipelines_support import ALICE, BOB, ScriptedExecutor, executor, make_service, published, service  # noqa: F401
from workflow_support import NOTEBOOKS, PREPARE, PUBLISH, REVIEW, THREE, TRAIN, published_workflow, spec_text


def nothing_published(pipelines, team: str = "data-team") -> bool:
    """No pipeline or version row, and no commit in the team's git repository."""
    with pipelines.sessions() as db:
        rows = db.query(Pipeline).count() + db.query(Version).count()
    repo = pipelines.versions.repos_root / team
    commits = subprocess.run(["git", "-C", str(repo), "rev-list", "--all"], capture_output=True, text=True)
    return rows == 0 and (not repo.exists() or commits.stdout.strip() == "")


async def refused(pipelines, steps_or_text, notebooks=NOTEBOOKS, error=SpecError) -> str:
    text = steps_or_text if isinstance(steps_or_text, str) else spec_text(steps_or_text)
    with pytest.raises(error) as caught:
        await pipelines.versions.publish_workflow(ALICE, "data-team", "flow", text, notebooks)
    assert nothing_published(pipelines)
    return str(caught.value)


def replace(step: dict, **changes) -> dict:
    """`step` with `changes`; a change to None removes the key."""
    return {k: v for k, v in {**step, **changes}.items() if v is not None}


async def test_a_workflow_version_is_the_spec_and_its_notebooks_in_one_commit(service):  # noqa: F811
    """The three-step workflow publishes as one version: one git commit with pipeline.yaml and the
    three notebooks, each step recorded with its own profile, image and resolved resources (the
    pytorch step with its CPU choice), in dependency order, and the run parameters named
    `<step>.<name>` with the spec's values as defaults."""
    version = await published_workflow(service, ALICE, steps=[PUBLISH, TRAIN, PREPARE])  # any order
    assert version["number"] == 1
    repo = service.versions.repos_root / "data-team"
    listed = subprocess.run(
        ["git", "-C", str(repo), "show", "--name-only", "--format=", version["commit"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(listed) == [
        f"flow/{f}"
        for f in ["pipeline.yaml", "prepare.ipynb", "publish.ipynb", "train.ipynb", "version.json"]
    ]
    with service.sessions() as db:
        row = db.query(Version).one()
        steps = {s["name"]: s for s in row.steps}
        assert [s["name"] for s in row.steps] == ["prepare", "train", "publish"]
        assert {n: (s["profile"], s["resources"]["gpus"]) for n, s in steps.items()} == {
            "prepare": ("pyspark", 0),
            "train": ("tensorflow", 0),
            "publish": ("pytorch", 0),
        }
        assert len({s["image"] for s in row.steps}) == 3
        assert steps["publish"]["choices"] == {"accelerator": "cpu"}
        assert row.parameters["prepare.rows"] == {"type": "int", "default": 1000}
        assert row.parameters["train.prepare_rows"] == {"type": "int", "default": 0}


@pytest.mark.parametrize(
    ("steps", "says"),
    [
        (
            [replace(PREPARE, depends_on=["publish"]), TRAIN, PUBLISH],
            ["pipeline.yaml: step prepare: depends_on: a cycle: prepare → publish → train → prepare"],
        ),
        (
            [PREPARE, replace(TRAIN, depends_on=["prep"]), PUBLISH],
            ["pipeline.yaml: step train: depends_on: 'prep' is not a step (steps: prepare, train, publish)"],
        ),
        (
            [PREPARE, replace(TRAIN, depends_on={"prepare": 1}), PUBLISH],
            ["pipeline.yaml: step train: depends_on: {'prepare': 1} is not a list of steps"],
        ),
        (
            [PREPARE, replace(TRAIN, when="prep.rows > 0"), PUBLISH],
            ["pipeline.yaml: step train: when: 'prep.rows > 0' names 'prep', which is not a step"],
        ),
        (
            [PREPARE, replace(TRAIN, when=["prepare.rows > 0", "publish failed"]), PUBLISH],
            [
                "pipeline.yaml: step train: when: 'publish failed' names 'publish',"
                " which is not upstream of train"
            ],
        ),
        (
            [PREPARE, replace(TRAIN, when="prepare.rows ~ 0"), PUBLISH],
            ["pipeline.yaml: step train: when: 'prepare.rows ~ 0' is not a condition"],
        ),
        (
            [replace(PREPARE, profile="spark"), TRAIN, PUBLISH],
            ["pipeline.yaml: step prepare: profile: Unknown profile 'spark'. Profiles you can use:"],
        ),
        (
            [PREPARE, TRAIN, replace(PUBLISH, choices=None)],
            [
                "pipeline.yaml: step publish: profile: profile 'pytorch'",
                "needs 1 GPU(s) and this machine has 0",
            ],
        ),
        (
            [PREPARE, TRAIN, replace(PUBLISH, choices={"accelerator": "tpu"})],
            ["pipeline.yaml: step publish: profile:", "tpu"],
        ),
        (
            [replace(PREPARE, parameters={"rowz": 3}), TRAIN, PUBLISH],
            [
                "pipeline.yaml: step prepare: prepare.ipynb: parameters:",
                "rowz: not a parameter of this notebook (parameters: rows)",
            ],
        ),
        (
            [replace(PREPARE, parameters={"rows": "many"}), TRAIN, PUBLISH],
            ["pipeline.yaml: step prepare: prepare.ipynb: parameters:", "rows: expected int"],
        ),
        (
            [replace(PREPARE, parameters=5), TRAIN, PUBLISH],
            ["pipeline.yaml: step prepare: parameters: 5 is not a mapping of parameter names to values"],
        ),
        (
            [PREPARE, replace(TRAIN, choices="large"), PUBLISH],
            ["pipeline.yaml: step train: choices: 'large' is not a mapping of choices to options"],
        ),
        (
            [PREPARE, replace(TRAIN, notebook="training.ipynb"), PUBLISH],
            [
                "pipeline.yaml: step train: notebook: 'training.ipynb' was not published with the spec"
                " (notebooks: prepare.ipynb, publish.ipynb, train.ipynb)"
            ],
        ),
        (
            [replace(PREPARE, image="spark:latest"), TRAIN, PUBLISH],
            ["pipeline.yaml: step prepare: image: unknown key (allowed: choices, depends_on,"],
        ),
        (
            [PREPARE, replace(TRAIN, name="prepare"), PUBLISH],
            ["pipeline.yaml: step prepare: name: used by more than one step"],
        ),
        (
            [PREPARE, TRAIN, {"name": "review", "kind": "approval", "depends_on": ["train"]}],
            ["pipeline.yaml: step review: approvers: the hub group whose members decide is required"],
        ),
        (
            [PREPARE, replace(TRAIN, timeout="soon"), PUBLISH],
            ["pipeline.yaml: step train: timeout: 'soon' is not a duration such as 600, 30m or 72h"],
        ),
        (
            [PREPARE, TRAIN, {**REVIEW, "timeout": 0}],
            ["pipeline.yaml: step review: timeout: 0 is not a duration such as 600, 30m or 72h"],
        ),
        (
            [PREPARE, replace(TRAIN, retries=11), PUBLISH],
            ["pipeline.yaml: step train: retries: 11 must be a whole number from 0 to 10"],
        ),
        (
            [replace(PREPARE, name="Prepare")],
            ["pipeline.yaml: steps[0]: name: 'Prepare' must be a-z, 0-9 and _, starting with a letter"],
        ),
        (
            [{"name": "review", "kind": "approval", "approvers": "ml-leads"}],
            ["pipeline.yaml: steps: a workflow needs at least one notebook step"],
        ),
    ],
)
async def test_a_bad_spec_names_the_file_the_step_and_the_key_and_publishes_nothing(service, steps, says):  # noqa: F811
    """Each mistake in pipeline.yaml is refused with a message naming pipeline.yaml, the step and
    the key (a cycle shows the loop; an unknown step or profile lists what there is), and nothing
    is published: no pipeline or version row, no git commit."""
    message = await refused(service, steps)
    for part in says:
        assert part in message


async def test_every_mistake_is_reported_at_once(service):  # noqa: F811
    """Several mistakes in several steps are all in the one refusal, each naming its step."""
    message = await refused(
        service,
        [
            replace(PREPARE, profile="spark"),
            replace(TRAIN, depends_on=["prep"]),
            replace(PUBLISH, notebook=None),
        ],
    )
    assert "step prepare: profile:" in message
    assert "step train: depends_on: 'prep' is not a step" in message
    assert "step publish: notebook: None was not published with the spec" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("steps: [", "pipeline.yaml: not valid YAML:"),
        ("steps: []", "pipeline.yaml: steps: a list of steps is required"),
        ("- name: prepare", "pipeline.yaml: steps: a list of steps is required"),
        (spec_text(THREE) + "schedule: daily\n", "pipeline.yaml: schedule: unknown key (allowed: steps)"),
        (yaml.safe_dump({"steps": ["prepare"]}), "pipeline.yaml: steps[0]: a step is a mapping"),
    ],
)
async def test_a_spec_that_is_not_a_list_of_steps_is_refused(service, text, says):  # noqa: F811
    """YAML that doesn't parse, an empty or missing `steps`, and unknown top-level keys are refused
    naming pipeline.yaml and the key; nothing is published."""
    assert says in await refused(service, text)


async def test_a_notebook_that_is_not_one_is_refused_by_its_file_name(service):  # noqa: F811
    """A file that isn't a notebook is refused naming it; nothing is published."""
    message = await refused(service, THREE, {**NOTEBOOKS, "train.ipynb": "{not json"}, NotebookError)
    assert message.startswith("train.ipynb: not a valid Jupyter notebook")


async def test_a_step_without_a_profile_gets_its_notebooks_kernels(service):  # noqa: F811
    """A step that names no profile gets the one whose image's kernel the notebook was written in
    (TensorFlow); a kernel that is no profile's is refused naming the step and the profiles."""
    tf = make_notebook("record('accuracy', 0.9)", parameters="epochs = 1\nprepare_rows = 0")
    tf["metadata"]["kernelspec"]["display_name"] = "TensorFlow"
    train = {k: v for k, v in TRAIN.items() if k != "profile"}
    message = await refused(service, [PREPARE, train, PUBLISH])
    assert (
        "pipeline.yaml: step train: profile: the notebook's kernel 'Python 3' is no profile's;"
        " name a profile (pyspark, pytorch, tensorflow)" in message
    )
    await published_workflow(
        service, ALICE, [PREPARE, train, PUBLISH], notebooks={**NOTEBOOKS, "train.ipynb": tf}
    )
    with service.sessions() as db:
        assert [s["profile"] for s in db.query(Version).one().steps] == ["pyspark", "tensorflow", "pytorch"]


async def test_a_notebook_file_name_must_be_a_plain_ipynb_name(service):  # noqa: F811
    """Notebooks are named like train.ipynb: a path or another extension is refused naming it."""
    for bad in ("../train.ipynb", "train.py", "sub/train.ipynb"):
        message = await refused(service, THREE, {**NOTEBOOKS, bad: NOTEBOOKS["train.ipynb"]})
        assert message == f"notebooks: {bad!r} is not a notebook file name like train.ipynb"


async def test_a_profile_the_team_may_not_use_is_refused_as_in_the_spawn_form(tmp_path, catalog_dirs):
    """A team's profiles are the catalog's groups': with tensorflow allowed to gpu-team only,
    data-team's workflow is refused at its tensorflow step as with an unknown profile (hidden
    profiles aren't revealed), and nothing is published; gpu-team publishes the same workflow."""
    catalog_dir, _ = catalog_dirs
    path = catalog_dir / "tensorflow.yaml"
    path.write_text(path.read_text().replace("allowed_groups: []", "allowed_groups: [gpu-team]"))
    pipelines = make_service(tmp_path / "data", ScriptedExecutor(), catalog_dir)
    message = await refused(pipelines, THREE)
    assert (
        "pipeline.yaml: step train: profile: Unknown profile 'tensorflow'. Profiles you can use:" in message
    )
    assert "tensorflow" not in message.split("Profiles you can use:")[1]
    assert (await published_workflow(pipelines, BOB, team="gpu-team"))["number"] == 1


async def test_only_the_notebooks_the_steps_name_are_committed(service):  # noqa: F811
    """A notebook sent along but used by no step is not part of the version."""
    extra = {**NOTEBOOKS, "scratch.ipynb": NOTEBOOKS["train.ipynb"]}
    await service.versions.publish_workflow(
        ALICE, "data-team", "flow", spec_text(THREE), {f: json.dumps(nb) for f, nb in extra.items()}
    )
    repo = service.versions.repos_root / "data-team" / "flow"
    assert sorted(p.name for p in repo.iterdir()) == [
        "pipeline.yaml",
        "prepare.ipynb",
        "publish.ipynb",
        "train.ipynb",
        "version.json",
    ]


async def test_a_workflow_versions_files_are_read_back_by_name(service):  # noqa: F811
    """A workflow has no one notebook: reading its notebook names one of its files (pipeline.yaml
    or a step's notebook), and without a name (as a diff or the notebook view asks) the answer is
    NotFound listing its files, not a git error; a single-notebook version reads as before."""
    await published_workflow(service, ALICE)
    assert service.versions.notebook(ALICE, "data-team", "flow", 1, "pipeline.yaml") == spec_text(THREE)
    train = service.versions.notebook(ALICE, "data-team", "flow", 1, "train.ipynb")
    assert "record('accuracy', 0.9)" in train
    files = "pipeline.yaml, prepare.ipynb, publish.ipynb, train.ipynb"
    with pytest.raises(NotFound, match=re.escape(f"data-team/flow v1 is a workflow; its files: {files}")):
        service.versions.notebook(ALICE, "data-team", "flow", 1)
    with pytest.raises(NotFound, match="is a workflow"):
        service.versions.diff(ALICE, "data-team", "flow", 1, 1)
    await published(service, "report")
    assert "print(greeting * n)" in service.versions.notebook(ALICE, "data-team", "report", 1)
    with pytest.raises(NotFound, match=re.escape("data-team/report v1 has one file, notebook.ipynb")):
        service.versions.notebook(ALICE, "data-team", "report", 1, "train.ipynb")
