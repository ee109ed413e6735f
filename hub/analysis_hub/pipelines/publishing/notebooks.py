"""Notebooks as pipeline versions: pure functions over notebook documents.

Contract:
- `read_notebook(data)` parses and validates a notebook (nbformat) or raises
  `NotebookError` saying what is wrong with it.
- `strip_outputs(nb)` returns a copy without outputs, execution counts and
  run-time metadata: what a version stores, so versions diff cleanly.
- `notebook_parameters(nb)` reads the cell tagged `parameters` with
  papermill's own translator: name -> `Parameter(type, default)`. A notebook
  without that cell is refused, saying how to tag one.
- `coerce_parameters(declared, given)` checks overrides against the declared
  parameters (unknown names, wrong types) and returns typed values; strings
  from a command line (`-p n=3`) are converted to the declared type.
- `error_cell(nb)` is the index of the cell papermill marked as failed.
- `recorded_outputs(nb)` are a workflow step's outputs, as
  `analysis_hub_outputs.record(name, value)` left them in its output notebook.
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass

import nbformat
from papermill.translators import papermill_translators

PARAMETERS_TAG = "parameters"
# What analysis_hub_outputs.record displays (singleuser/analysis_hub_outputs.py, in every image).
OUTPUT_MEDIA_TYPE = "application/vnd.analysis-hub.output+json"
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


class NotebookError(ValueError):
    """A notebook that can't become a pipeline version; the message says why."""


@dataclass(frozen=True)
class Parameter:
    type: str  # papermill's inferred type name: int, float, bool, str, None, list, dict...
    default: object

    def to_json(self) -> dict:
        return {"type": self.type, "default": self.default}


def read_notebook(data: bytes | str | dict) -> nbformat.NotebookNode:
    try:
        text = json.dumps(data) if isinstance(data, dict) else data
        # reads() joins multi-line sources and upgrades older formats to v4.
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except (ValueError, TypeError, KeyError, AttributeError, nbformat.ValidationError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NotebookError(f"not a valid Jupyter notebook: {first_line[:300]}") from None
    return nb


def strip_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    clean = copy.deepcopy(nb)
    for cell in clean.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    clean.metadata.pop("papermill", None)
    clean.metadata.pop("widgets", None)
    return clean


def kernel_name(nb: nbformat.NotebookNode) -> str:
    return nb.metadata.get("kernelspec", {}).get("name") or "python3"


def notebook_parameters(nb: nbformat.NotebookNode) -> dict[str, Parameter]:
    cell = next((c for c in nb.cells if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        raise NotebookError(
            "the notebook has no cell tagged 'parameters'; in JupyterLab select the cell that sets the"
            " defaults, open the property inspector (gear icon) and add the tag 'parameters'"
        )
    language = nb.metadata.get("kernelspec", {}).get("language") or "python"
    translator = papermill_translators.find_translator(kernel_name(nb), language)
    try:
        found = translator.inspect(cell)
    except NotImplementedError:
        raise NotebookError(f"parameters of {language} notebooks can't be read") from None
    parameters = {}
    for p in found:
        default = _literal(p.default)
        # papermill knows a type only from an annotation (`n: int = 3`); else the default's type says it.
        inferred = p.inferred_type_name if p.inferred_type_name != "None" else type(default).__name__
        parameters[p.name] = Parameter(
            type="None" if default is None and inferred == "NoneType" else inferred, default=default
        )
    return parameters


def coerce_parameters(declared: dict[str, Parameter], given: dict[str, object]) -> dict[str, object]:
    """Typed values for `given`, or NotebookError naming each bad parameter."""
    problems, typed = [], {}
    for name, value in given.items():
        parameter = declared.get(name)
        if parameter is None:
            problems.append(
                f"{name}: not a parameter of this notebook (parameters: {', '.join(declared) or 'none'})"
            )
            continue
        try:
            typed[name] = _coerce(parameter.type, value)
        except (TypeError, ValueError):
            problems.append(
                f"{name}: expected {parameter.type} like the default {parameter.default!r}, got {value!r}"
            )
    if problems:
        raise NotebookError("bad parameters: " + "; ".join(problems))
    return typed


def error_cell(nb: nbformat.NotebookNode) -> int | None:
    for index, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("exception"):
            return index
    return None


def _coerce(type_name: str, value: object) -> object:
    expected = _TYPES.get(type_name.split("[")[0])
    if expected is None:  # None, list, dict...: anything JSON can say is accepted as is
        return json.loads(value) if isinstance(value, str) and type_name != "None" else value
    if isinstance(value, str) and expected is not str:
        if expected is bool:
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        return expected(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise TypeError(value)
    return value


def _literal(source: str) -> object:
    """The default as a value where it is a plain literal, else its source text."""
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def recorded_outputs(nb: nbformat.NotebookNode) -> dict[str, object]:
    """The outputs a run's notebook recorded with `analysis_hub_outputs.record`; the last wins."""
    found: dict[str, object] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            record = output.get("data", {}).get(OUTPUT_MEDIA_TYPE)
            if isinstance(record, dict) and isinstance(record.get("name"), str):
                found[record["name"]] = record.get("value")
    return found
