"""Small notebooks for the pipelines tests and benchmark: a tagged `parameters` cell, then code cells."""

from __future__ import annotations

import json

import nbformat


def make_notebook(*cells: str, parameters: str | None = "n = 3\ngreeting = 'hi'") -> dict:
    """A Python 3 notebook as JSON (a dict); `parameters=None` leaves out the parameters cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(source) for source in cells]
    return json.loads(nbformat.writes(nb))
