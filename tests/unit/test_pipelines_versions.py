"""Publishing: immutable versions, committed to the team's real git repository and recorded in the
database, and every refusal before anything is written (pipelines.versions)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import nbformat
import pytest
import yaml
from analysis_hub.pipelines.access import Conflict, Forbidden, NotFound, TooLarge
from analysis_hub.pipelines.publishing.notebooks import NotebookError
from analysis_hub.pipelines.publishing.specs import SpecError
from analysis_hub.selection import ProfileRequestError
from notebooks import make_notebook
from pipelines_support import (  # noqa: F401
    ALICE,
    BOB,
    CAROL,
    REPORT,
    ScriptedExecutor,
    executor,
    make_service,
    service,
)


def git(pipelines, team: str, *args: str) -> str:
    repo = pipelines.versions.repos_root / team
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def with_outputs(nb: dict) -> str:
    node = nbformat.from_dict(nb)
    node.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hihihi\n")]
    node.cells[-1].execution_count = 7
    return nbformat.writes(node)


async def test_versions_are_numbered_commits_by_their_publisher_without_outputs(service):  # noqa: F811
    """Two publishes make v1 and v2: each a git commit authored by the hub user and tagged
    `<pipeline>/v<N>`, the notebook stored without outputs, the row naming the commit with the
    profile's resolved resources, image, parameters and kernel; the audit trail has both."""
    v1 = await service.versions.publish(
        ALICE, "data-team", "report", with_outputs(REPORT), "pyspark", message="first"
    )
    second = make_notebook("print(greeting)", parameters="greeting = 'yo'")
    v2 = await service.versions.publish(CAROL, "data-team", "report", json.dumps(second), "pyspark", parent=1)
    assert (v1["number"], v2["number"]) == (1, 2)
    assert git(service, "data-team", "log", "--format=%an %s").splitlines() == [
        "carol report v2",
        "alice report v1: first",
    ]
    assert git(service, "data-team", "tag").split() == ["report/v1", "report/v2"]
    assert git(service, "data-team", "rev-parse", "report/v1").strip() == v1["commit"]
    stored = nbformat.reads(service.versions.notebook(ALICE, "data-team", "report", 1), as_version=4)
    assert [c.source for c in stored.cells] == ["n = 3\ngreeting = 'hi'", "print(greeting * n)"]
    assert all(c.outputs == [] and c.execution_count is None for c in stored.cells)
    assert v1["parameters"] == {
        "n": {"type": "int", "default": 3},
        "greeting": {"type": "str", "default": "hi"},
    }
    assert (v1["profile"], v1["image"], v1["kernel"]) == ("pyspark", "pyspark", "python3")
    assert v1["resources"]["memory_limit"] == 4 * 2**30 and v1["published_by"] == "alice"
    assert v2["parameters"] == {"greeting": {"type": "str", "default": "yo"}}
    assert [(e["actor"], e["action"], e["after"]["version"]) for e in service.audit(ALICE)] == [
        ("alice", "publish", 1),
        ("carol", "publish", 2),
    ]
    described = service.describe(ALICE, "data-team", "report")
    assert described["versions"] == [v1, v2] and described["active_version"] is None
    assert "print(greeting * n)" in service.versions.diff(ALICE, "data-team", "report", 1, 2)
    with pytest.raises(NotFound, match=r"has no version 3 \(versions: \[1, 2\]\)"):
        service.versions.notebook(ALICE, "data-team", "report", 3)


async def test_two_publishes_on_the_same_parent_one_wins_the_other_is_told_to_look(service):  # noqa: F811
    """Publishes to one team are serialised: of two based on v1 at once, one makes v2 and the other
    gets Conflict naming the newer version; git and the database hold exactly v1 and v2."""
    await service.versions.publish(ALICE, "data-team", "report", json.dumps(REPORT), "pyspark")
    results = await asyncio.gather(
        *(
            service.versions.publish(ALICE, "data-team", "report", json.dumps(REPORT), "pyspark", parent=1)
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    [won] = [r for r in results if isinstance(r, dict)]
    [lost] = [r for r in results if isinstance(r, Exception)]
    assert won["number"] == 2 and isinstance(lost, Conflict)
    assert "is at v2, not v1: someone published meanwhile" in str(lost)
    assert git(service, "data-team", "tag").split() == ["report/v1", "report/v2"]
    assert service.describe(ALICE, "data-team", "report")["latest_version"] == 2


async def test_refused_publishes_write_nothing(service, tmp_path):  # noqa: F811
    """An outsider, a name with path characters, an oversized or broken notebook, one without a
    parameters cell, an unknown profile, a GPU version on a machine without GPUs and a deleted
    pipeline's name are each refused with their reason; no commit, no row, no audit event."""
    await service.versions.publish(ALICE, "data-team", "old", json.dumps(REPORT), "pyspark")
    service.deployments.delete(ALICE, "data-team", "old")
    audit_before = service.audit(ALICE)
    log_before = git(service, "data-team", "log", "--format=%H")
    good = json.dumps(REPORT)
    cases = [
        (BOB, "report", good, "pyspark", {}, Forbidden, "only members of data-team"),
        (ALICE, "../etc", good, "pyspark", {}, SpecError, "not a valid name"),
        (ALICE, "report", "x" * (2**20 + 1), "pyspark", {}, TooLarge, "the limit is 1 MiB"),
        (ALICE, "report", "{", "pyspark", {}, NotebookError, "not a valid Jupyter notebook"),
        (
            ALICE,
            "report",
            json.dumps(make_notebook("1", parameters=None)),
            "pyspark",
            {},
            NotebookError,
            "no cell tagged 'parameters'",
        ),
        (ALICE, "report", good, "nope", {}, ProfileRequestError, "Unknown profile 'nope'"),
        (ALICE, "report", good, "pytorch", {}, SpecError, "needs 1 GPU(s) and this machine has 0"),
        (ALICE, "old", good, "pyspark", {}, Conflict, "data-team/old was deleted"),
    ]
    for caller, name, notebook, profile, choices, error, message in cases:
        with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
            await service.versions.publish(caller, "data-team", name, notebook, profile, choices)
    assert service.audit(ALICE) == audit_before
    assert git(service, "data-team", "log", "--format=%H") == log_before
    assert service.list_pipelines(ALICE) == []
    # The CPU option of the same profile is fine on this machine.
    cpu = await service.versions.publish(ALICE, "data-team", "train", good, "pytorch", {"accelerator": "cpu"})
    assert cpu["resources"]["gpus"] == 0


async def test_a_profile_the_team_may_not_use_is_refused_as_unknown(tmp_path, catalog_dirs):
    """Versions use the spawn form's rules: a profile limited to gpu-team is unknown to data-team."""
    catalog_dir, _ = catalog_dirs
    pytorch = yaml.safe_load((catalog_dir / "pytorch.yaml").read_text())
    (catalog_dir / "pytorch.yaml").write_text(yaml.safe_dump({**pytorch, "allowed_groups": ["gpu-team"]}))
    restricted = make_service(tmp_path / "state", ScriptedExecutor(), catalog_dir=catalog_dir, gpus=1)
    with pytest.raises(ProfileRequestError, match="Unknown profile 'pytorch'"):
        await restricted.versions.publish(ALICE, "data-team", "train", json.dumps(REPORT), "pytorch")
    version = await restricted.versions.publish(BOB, "gpu-team", "train", json.dumps(REPORT), "pytorch")
    assert version["resources"]["gpus"] == 1, "a machine with a GPU takes a GPU version"
