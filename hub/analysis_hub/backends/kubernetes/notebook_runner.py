"""What runs inside a pipeline's pod: papermill, then the log into the artifact store.

Contract: `python -c <this file's text> INPUT_URL OUTPUT_URL LOG_URL KERNEL PARAMETERS_JSON [OPTION...]`
(the Argo WorkflowTemplate's container command, see `workflows.py`) executes
the notebook at INPUT_URL with papermill, writing it to OUTPUT_URL after
every cell (so a run that dies keeps its partial output and its error cell),
with the typed parameters from PARAMETERS_JSON. The log, papermill's with
every cell's output, goes to the pod's stdout (Argo's and kubectl's logs) and
to LOG_URL when the run ends, also when it is stopped (Argo's stop and
deadlines send SIGTERM). The URLs are anything papermill's own I/O handlers
take (s3://... needs boto3 in the image). Exit status: 0 when every cell ran,
1 when a cell or papermill failed, 128 + the signal when stopped.

A workflow step (`workflow_dag.py`) adds options, each `--name=JSON`:
- `--upstream={"prepare_rows": ["/run/.../prepare.json", "rows"]}`: before the
  run, each named papermill parameter takes that output from that upstream
  step's outputs file where the file has it (a step that didn't run or
  didn't record it leaves the parameter as it is);
- `--outputs=["/tmp/...json", ...]`: after the run (also a failed or stopped
  one), the outputs the notebook recorded (`recorded_outputs`, the cell
  outputs `analysis_hub_outputs.record` displays) are written as one JSON
  object to each path;
- `--conditions=[["/tmp/.../c0", "rows", ">", 0], ...]`: each condition on
  those outputs is written to its path as `true` or `false`, with the
  semantics of `pipelines.dag.Condition` (an output not recorded, or values
  that don't compare, make it false).

It runs in the curated images, not in the hub: the standard library and
papermill only, never `analysis_hub`. Argo substitutes its double-brace expressions in
every string of a template, so this file must never hold two opening braces in
a row.
"""

import io
import json
import logging
import operator
import os
import signal
import sys

# What analysis_hub_outputs.record displays, read as pipelines.notebooks.recorded_outputs reads it
# (this file can't import either; a unit test checks they agree).
OUTPUT_MEDIA_TYPE = "application/vnd.analysis-hub.output+json"
COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def recorded_outputs(notebook: dict) -> dict:
    """A notebook's recorded outputs, name -> value; a name recorded twice keeps its last value."""
    found = {}
    for cell in notebook.get("cells") or []:
        for output in cell.get("outputs") or []:
            record = (output.get("data") or {}).get(OUTPUT_MEDIA_TYPE)
            if isinstance(record, dict) and isinstance(record.get("name"), str):
                found[record["name"]] = record.get("value")
    return found


def condition_holds(outputs: dict, name: str, op: str, value) -> bool:
    if name not in outputs:
        return False
    try:
        return bool(COMPARE[op](outputs[name], value))
    except TypeError:
        return False


def upstream_parameters(wiring: dict) -> dict:
    """The papermill parameters taken from upstream steps' outputs files (see the contract)."""
    found = {}
    for parameter, (path, name) in wiring.items():
        try:
            with open(path) as f:
                outputs = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(outputs, dict) and name in outputs:
            found[parameter] = outputs[name]
    return found


def write_results(output_url: str, paths: list, conditions: list, log) -> None:
    outputs = {}
    try:
        from papermill.iorw import papermill_io

        outputs = recorded_outputs(json.loads(papermill_io.read(output_url)))
    except Exception:
        log.exception("the recorded outputs could not be read from %s", output_url)
    for path in paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(outputs, f)
    for path, name, op, value in conditions:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("true" if condition_holds(outputs, name, op, value) else "false")
    if paths:
        log.info("recorded outputs: %s", ", ".join(sorted(outputs)) or "none")


def main(argv: list[str]) -> int:
    source, output, log_url, kernel, parameters = argv[:5]
    options = dict(arg[2:].split("=", 1) for arg in argv[5:])
    buffer = io.StringIO()
    handlers = [logging.StreamHandler(sys.stdout), logging.StreamHandler(buffer)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers)
    log = logging.getLogger("pipeline")

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        import papermill  # here, so that an import error is logged too

        values = json.loads(parameters)
        values.update(upstream_parameters(json.loads(options.get("upstream", "{}"))))
        papermill.execute_notebook(
            source,
            output,
            parameters=values,
            kernel_name=kernel,
            log_output=True,
            progress_bar=False,
        )
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        log.error("stopped by signal %s (Argo's stop or the run's deadline)", code - 128)
    except Exception:
        log.exception("the notebook failed")
        code = 1
    if "outputs" in options or "conditions" in options:
        paths, conditions = (
            json.loads(options.get("outputs", "[]")),
            json.loads(options.get("conditions", "[]")),
        )
        try:
            write_results(output, paths, conditions, log)
        except Exception:
            log.exception("the outputs could not be written")
            code = code or 1
    try:
        from papermill.iorw import papermill_io

        papermill_io.write(buffer.getvalue(), log_url, extensions=[".txt"])
    except Exception:
        log.exception("the log could not be written to %s", log_url)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
