"""What runs inside a pipeline step's pod: papermill, then the output notebook framed on stdout.

Contract: `python notebook_runner.py INPUT_DIR WORK_DIR TOKEN -- COMMAND...`
(the Job's container arguments, see `jobs.py`; the image's entry point, its
start hooks and tini, runs first, as for a server):
- copies `input.ipynb` and `parameters.json` from INPUT_DIR (the run's
  ConfigMap, mounted read-only) into WORK_DIR (the pod's writable folder);
- runs COMMAND (papermill's command line, `pipelines.executor.
  papermill_arguments`, the same as the docker and local backends') in
  WORK_DIR, its output going straight to the pod's log as it comes, so the
  service streams it to the run's `log.txt` while the notebook runs;
- when COMMAND ends, fails, or is stopped (SIGTERM from the Job's deadline
  or from a cancel, forwarded to COMMAND), writes WORK_DIR/output.ipynb (the
  partial notebook, too: papermill saves it after every cell) to stdout as
  one framed block: a `begin` line, the gzip-compressed notebook as base64
  lines, and an `end` line with the SHA-256 of the compressed bytes, each
  marker carrying TOKEN (chosen by the service per run) so a notebook's own
  output can't pass for the frame;
- exits with COMMAND's exit status (128 + the signal when it was stopped).

`frame_lines` writes the frame and `FrameReader` reads it back from the log,
line by line; the service imports the reader from this file
(`job_follower.py`).
This file runs in the curated images, not in the hub: the standard library
only, never `analysis_hub`.
"""

import base64
import contextlib
import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import sys

INPUTS = ("input.ipynb", "parameters.json")
OUTPUT = "output.ipynb"
MARK = "===== analysis-hub output.ipynb"
LINE_CHARS = 1000  # base64 characters per log line, well under any runtime's line limit


def begin_line(token: str) -> str:
    return f"{MARK} {token} begin ====="


def end_line(token: str, digest: str) -> str:
    return f"{MARK} {token} end {digest} ====="


def frame_lines(data: bytes, token: str) -> list:
    """The framed block for `data` (the output notebook's bytes), one string per log line."""
    packed = gzip.compress(data, mtime=0)
    text = base64.b64encode(packed).decode("ascii")
    body = [text[i : i + LINE_CHARS] for i in range(0, len(text), LINE_CHARS)]
    return [begin_line(token), *body, end_line(token, hashlib.sha256(packed).hexdigest())]


class FrameReader:
    """Reads a pod's log line by line: `feed` says whether a line belongs to a frame (so it stays
    out of the run's log), and `data` is the last complete, intact frame's notebook bytes."""

    def __init__(self, token: str):
        self.begin = begin_line(token)
        self.end_prefix = f"{MARK} {token} end "
        self.data = None
        self._body = None  # the base64 lines of a frame being read

    def feed(self, line: str) -> bool:
        line = line.rstrip("\r\n")
        if line == self.begin:
            self._body = []
            return True
        if self._body is None:
            return False
        if line.startswith(self.end_prefix):
            digest = line[len(self.end_prefix) :].split(" ", 1)[0]
            self._finish(digest)
            return True
        self._body.append(line.strip())
        return True

    def _finish(self, digest: str) -> None:
        body, self._body = self._body, None
        try:
            packed = base64.b64decode("".join(body), validate=True)
        except ValueError:
            return  # mangled on the way: keep any earlier frame
        if hashlib.sha256(packed).hexdigest() == digest:
            self.data = gzip.decompress(packed)


def write_frame(path: str, token: str, out=None) -> bool:
    """Frame the file at `path` to `out` (stdout); False when there is no such file."""
    out = out or sys.stdout
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    out.write("\n".join(frame_lines(data, token)) + "\n")
    out.flush()
    return True


def say(message: str) -> None:
    print(f"notebook_runner: {message}", flush=True)


def main(argv: list) -> int:
    if "--" not in argv or argv.index("--") != 3 or len(argv) < 5:
        say("usage: notebook_runner.py INPUT_DIR WORK_DIR TOKEN -- COMMAND...")
        return 2
    input_dir, work_dir, token = argv[:3]
    command = argv[4:]
    os.makedirs(work_dir, exist_ok=True)
    for name in INPUTS:
        shutil.copyfile(os.path.join(input_dir, name), os.path.join(work_dir, name))
    stopped, children = [], []

    def forward(signum, _frame):
        stopped.append(signum)
        for child in children:
            with contextlib.suppress(OSError):  # tini -g has sent it already where tini runs
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if stopped:  # stopped before papermill started
        return 128 + stopped[0]
    children.append(subprocess.Popen(command, cwd=work_dir))
    code = children[0].wait()
    if code < 0:
        code = 128 - code
    if stopped:
        say(f"stopped by signal {stopped[0]} (the run's deadline or a cancel); exit status {code}")
    else:
        say(f"papermill exited with status {code}")
    if not write_frame(os.path.join(work_dir, OUTPUT), token):
        say("no output notebook was written")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
