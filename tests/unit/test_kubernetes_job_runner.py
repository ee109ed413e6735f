"""What runs in a pipeline step's pod: the runner, its papermill run and the frame of its output notebook.

The runner (`backends/kubernetes/notebook_runner.py`) runs in the curated
images, with their Python only. Its framing is run here on a small notebook
without a kernel, its command on a stand-in for papermill, and once with
papermill and a real Python kernel (the test environment's ipykernel).
"""

from __future__ import annotations

import ast
import io
import json
import signal
import sys

import nbformat
from analysis_hub.backends.kubernetes import notebook_runner
from analysis_hub.backends.kubernetes.jobs import runner_source
from analysis_hub.pipelines.engine.executor import papermill_arguments


def read_frame(text: str, token: str):
    """The notebook bytes framed in a whole log `text`, or None: the service's reader, fed every line."""
    reader = notebook_runner.FrameReader(token)
    for line in text.splitlines():
        reader.feed(line)
    return reader.data


def test_the_runner_needs_only_the_images_standard_library():
    """The runner runs in the curated images, not in the hub: it imports the standard library only."""
    imports = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(runner_source()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imports == {
        "base64",
        "contextlib",
        "gzip",
        "hashlib",
        "os",
        "shutil",
        "signal",
        "subprocess",
        "sys",
    }


def small_notebook() -> bytes:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('é' * 3000)")]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="é" * 3000 + "\n")]
    return nbformat.writes(nb).encode()


def test_the_output_notebook_survives_the_log_framed_between_other_lines(tmp_path):
    """The runner frames the output notebook (gzip, base64 lines, an end line with its digest) on
    stdout; read back from a log where other lines come before and after, and where a notebook
    printed a fake frame with another token, the bytes are the notebook's, and no frame line
    reaches the run's log."""
    data = small_notebook()
    (tmp_path / "output.ipynb").write_bytes(data)
    out = io.StringIO()
    assert notebook_runner.write_frame(str(tmp_path / "output.ipynb"), "tok", out)
    assert not notebook_runner.write_frame(str(tmp_path / "missing.ipynb"), "tok", out)
    lines = notebook_runner.frame_lines(data, "tok")
    assert out.getvalue() == "\n".join(lines) + "\n"
    assert all(len(line) <= 1000 for line in lines[1:-1])
    fake = notebook_runner.frame_lines(b"not it", "other")
    log = [
        "[I] Executing notebook",
        *fake,
        "cell output",
        *lines,
        "notebook_runner: papermill exited with status 0",
    ]
    reader = notebook_runner.FrameReader("tok")
    kept = [line for line in log if not reader.feed(line)]
    assert reader.data == data
    assert kept == [
        "[I] Executing notebook",
        *fake,
        "cell output",
        "notebook_runner: papermill exited with status 0",
    ]
    assert read_frame("\n".join(log), "tok") == data


def test_a_damaged_or_unfinished_frame_gives_no_notebook():
    """A frame cut short (the pod killed while writing it) or changed on the way (digest) is not taken
    for the notebook; an earlier intact one still is."""
    data = small_notebook()
    lines = notebook_runner.frame_lines(data, "tok")
    assert read_frame("\n".join(lines[:-1]), "tok") is None
    damaged = [*lines[:1], lines[1][:-4] + "AAAA", *lines[2:]]
    assert read_frame("\n".join(damaged), "tok") is None
    assert read_frame("\n".join([*lines, *damaged]), "tok") == data


def test_the_runner_frames_the_output_of_its_command_and_exits_with_its_status(tmp_path, capsys):
    """`notebook_runner.main` copies the inputs from the ConfigMap folder into the working folder,
    runs the command there (a stand-in for papermill that writes output.ipynb and fails), frames
    that notebook on stdout and exits with the command's status."""
    inputs, work, data = tmp_path / "input", tmp_path / "work", small_notebook()
    inputs.mkdir()
    (inputs / "input.ipynb").write_bytes(data)
    (inputs / "parameters.json").write_text("{}")
    command = [
        sys.executable,
        "-c",
        "import shutil, sys; shutil.copy('input.ipynb', 'output.ipynb'); sys.exit(3)",
    ]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = notebook_runner.main([str(inputs), str(work), "tok", "--", *command])
    finally:  # the runner forwards signals to papermill; pytest keeps its own
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert code == 3
    assert (work / "parameters.json").read_text() == "{}"
    assert read_frame(capsys.readouterr().out, "tok") == data


def test_the_runner_runs_papermill_and_frames_the_failed_notebook_with_its_error_cell(tmp_path, capfd):
    """With the Job's own command line (papermill, as the other backends run it) and a real kernel:
    the parameters reach the notebook, papermill's log goes to stdout as it runs, a failing cell
    ends it with papermill's exit status, and the framed notebook is the executed one, the error
    cell included, so the run page shows it (`notebooks.error_cell`)."""
    from analysis_hub.pipelines.publishing.notebooks import error_cell

    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("rows = 0")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        parameters,
        nbformat.v4.new_code_cell("print('rows', rows)"),
        nbformat.v4.new_code_cell("1 / 0"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    inputs, work = tmp_path / "input", tmp_path / "work"
    inputs.mkdir()
    nbformat.write(nb, inputs / "input.ipynb")
    (inputs / "parameters.json").write_text('{"rows": 10}')
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = notebook_runner.main(
            [str(inputs), str(work), "tok", "--", sys.executable, *papermill_arguments("python3")]
        )
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
    captured = capfd.readouterr()
    assert code == 1
    assert "rows 10" in captured.out + captured.err  # papermill's --log-output
    executed = nbformat.reads(read_frame(captured.out, "tok").decode(), as_version=4)
    assert error_cell(executed) is not None and "ZeroDivisionError" in json.dumps(executed.cells[-1].outputs)
