"""What runs inside a pipeline's pod: papermill, then the log into the artifact store.

Contract: `python -c <this file's text> INPUT_URL OUTPUT_URL LOG_URL KERNEL PARAMETERS_JSON`
(the Argo WorkflowTemplate's container command, see `workflows.py`) executes
the notebook at INPUT_URL with papermill, writing it to OUTPUT_URL after
every cell (so a run that dies keeps its partial output and its error cell),
with the typed parameters from PARAMETERS_JSON. The log, papermill's with
every cell's output, goes to the pod's stdout (Argo's and kubectl's logs) and
to LOG_URL when the run ends, also when it is stopped (Argo's stop and
deadlines send SIGTERM). The URLs are anything papermill's own I/O handlers
take (s3://... needs boto3 in the image). Exit status: 0 when every cell ran,
1 when a cell or papermill failed, 128 + the signal when stopped.

It runs in the curated images, not in the hub: the standard library and
papermill only, never `analysis_hub`. Argo substitutes its double-brace expressions in
every string of a template, so this file must never hold two opening braces in
a row.
"""

import io
import json
import logging
import signal
import sys


def main(argv: list[str]) -> int:
    source, output, log_url, kernel, parameters = argv
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

        papermill.execute_notebook(
            source,
            output,
            parameters=json.loads(parameters),
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
    try:
        from papermill.iorw import papermill_io

        papermill_io.write(buffer.getvalue(), log_url, extensions=[".txt"])
    except Exception:
        log.exception("the log could not be written to %s", log_url)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
