"""Record a pipeline step's outputs from a notebook: `record("rows", n)`.

Installed in every curated image and every local environment, so the same
notebook records outputs in a server and in a pipeline run. A recorded
value is a small JSON value (number, string, boolean, null, or a list or
mapping of those; a path is a string). It is displayed as a cell output of
its own media type, so it is saved in the output notebook by papermill on
every backend: the pipelines service reads it back from there after the
step (`analysis_hub.pipelines.publishing.notebooks.recorded_outputs`) and hands it to
later steps as a papermill parameter named `<step>_<name>`, and to their
conditions. Needs nothing but the standard library and IPython.
"""

from __future__ import annotations

import json
import re

MEDIA_TYPE = "application/vnd.analysis-hub.output+json"
MAX_BYTES = 64 * 1024  # outputs are for small values; data goes to files in the run folder
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def record(name: str, value) -> None:
    """Record `value` as this step's output `name` (a Python identifier)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"output name {name!r} must be a Python identifier (letters, digits, _)")
    text = json.dumps(value)  # raises TypeError for what JSON can't carry
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(
            f"output {name!r} is {len(text.encode())} bytes; outputs are at most {MAX_BYTES} bytes:"
            " write larger data to a file in the run folder and record its path"
        )
    from IPython.display import display

    display(
        {MEDIA_TYPE: {"name": name, "value": json.loads(text)}, "text/plain": f"{name} = {text}"}, raw=True
    )
