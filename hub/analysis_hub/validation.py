"""Turn pydantic validation errors into lines a person can act on; shared field patterns, and
the base of every settings section.

Pure. Each line reads `dotted.key: reason`, where an unknown key also lists
the keys that are allowed there, so an admin sees which file, which key and
what is allowed without reading the code.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, ValidationError


class Section(BaseModel):
    """A part of the settings file: a key it doesn't know is an error, never ignored."""

    model_config = ConfigDict(extra="forbid")


def describe_validation_error(error: ValidationError, model: type[BaseModel] | None = None) -> list[str]:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, item["loc"][:-1])
            message = "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif item["type"].startswith("value_error"):
            message = message.removeprefix("Value error, ")
        elif "input" in item and not isinstance(item["input"], dict | list):
            message = f"{message} (got {item['input']!r})"
        lines.append(f"{location}: {message}")
    return lines


def _allowed_keys(model, parent_loc) -> list[str]:
    """Follow `parent_loc` through the model's annotations; list the keys allowed there."""
    if model is None:
        return []
    annotation = model
    for part in parent_loc:
        current = _model_in(annotation) if not _is_container(annotation) else None
        if current is not None and isinstance(part, str) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
        else:
            # a dict key (a choice name) or a list index: step into the value type
            annotation = _value_type(annotation)
    current = _model_in(annotation)
    return sorted(current.model_fields) if current else []


def _is_container(annotation) -> bool:
    """dict[...] or list[...] (possibly `| None`): its keys are data, not field names."""
    origins = {getattr(annotation, "__origin__", None)} | {
        getattr(arg, "__origin__", None) for arg in getattr(annotation, "__args__", ())
    }
    return bool(origins & {dict, list})


def _value_type(annotation):
    for arg in reversed(getattr(annotation, "__args__", ())):
        if _model_in(arg) is not None:
            return arg
    return None


def _model_in(annotation):
    """The BaseModel inside an annotation like `X | None`, `list[X]`, `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# (pattern, what it means) for settings' field validators.
DNS_NAME = (r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", "a Kubernetes name: lower-case letters, digits and '-'")


def matching(value: str | None, pattern: str, meaning: str) -> str | None:
    if value is not None and not re.match(pattern, value):
        raise ValueError(f"must be {meaning} (got {value!r})")
    return value
