"""Names, labels and paths that a pipeline run's Kubernetes objects share (pure).

Contract:
- `object_name(base, suffix)` is always a valid DNS-1123 label of at most 63
  characters (the Job controller puts a Job's name in its pods' labels), and
  two bases that had to be shortened still differ (a digest).
- `label_value(text)` is `text` when it is a valid label value, else a valid
  one that still tells values apart; `run_labels(spec)` are a run's objects'
  labels (team, pipeline, version, run id and step, as valid label values) and
  `run_annotations(spec)` the exact team and pipeline names.
- `run_selector(run_id)` selects every object of one run (its Jobs,
  ConfigMaps, pods and its run folder's claim).
- `PIPELINE_RUN_LABEL` is on every run pod: the chart's NetworkPolicy for
  pipeline runs selects it (helm/analysis-hub/templates/_helpers.tpl,
  `analysis-hub.pipelineRunSelector`).
- `run_folder_claim_name` names the claim of a workflow run's shared folder,
  one per run (mounted in each step's pod at `images.RUN_FOLDER`, the docker
  backend's path too).
- `KEEP_FINISHED_SECONDS`: a finished run's Job and pods stay a week (for
  kubectl), and a run folder that may still be repaired as long.
"""

from __future__ import annotations

import hashlib
import re

from ...pipelines.publishing.specs import RunSpec

LABEL_PREFIX = "analysis-hub/"
PIPELINE_RUN_LABEL = {LABEL_PREFIX + "pipeline-run": "true"}
RUN_FOLDER_LABEL = {LABEL_PREFIX + "run-folder": "true"}  # on every run folder's claim
KEEP_FINISHED_SECONDS = 7 * 86400
RUN_VOLUME = "run-folder"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def object_name(base: str, suffix: str = "", limit: int = 63) -> str:
    """A DNS-1123 label of at most `limit` characters."""
    clean = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-") or "x"
    tail = f"-{suffix}" if suffix else ""
    if len(clean) + len(tail) > limit:
        digest = hashlib.sha256(base.encode()).hexdigest()[:8]
        clean = f"{clean[: limit - len(tail) - 9].rstrip('-')}-{digest}"
    return clean + tail


def label_value(text: str) -> str:
    """`text` when it is a valid label value, else a valid one that still tells values apart."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:52].strip("-_.")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{clean}-{digest}" if clean else digest


def run_labels(spec: RunSpec, with_step: bool = True) -> dict[str, str]:
    labels = {"team": spec.team, "pipeline": spec.pipeline, "version": str(spec.version)}
    labels["run"] = str(spec.run_id)
    if spec.step and with_step:
        labels["step"] = spec.step
    return {LABEL_PREFIX + k: label_value(v) for k, v in labels.items()}


def run_annotations(spec: RunSpec, with_step: bool = True) -> dict[str, str]:
    """The exact names, where labels may have had to shorten them."""
    names = {LABEL_PREFIX + "team": spec.team, LABEL_PREFIX + "pipeline": spec.pipeline}
    if spec.step and with_step:
        names[LABEL_PREFIX + "step"] = spec.step
    return names


def run_selector(run_id: int) -> str:
    return f"{LABEL_PREFIX}run={run_id}"


def run_folder_claim_name(team: str, pipeline: str, run_id: int) -> str:
    return object_name(f"{team}-{pipeline}-{run_id}", "run-folder")
