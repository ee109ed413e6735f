"""CPU and memory quantities, spelled the way Kubernetes spells them."""

from __future__ import annotations

import pytest
from analysis_hub.quantities import format_cpu, format_memory, parse_cpu, parse_memory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 512 * 2**20),
        ("2G", 2 * 10**9),
        ("1.5Gi", 3 * 2**29),
        ("100k", 100_000),
        ("1Ti", 2**40),
        ("1024", 1024),
        (1024, 1024),
        (0, 0),
    ],
)
def test_parse_memory_accepts_kubernetes_spellings(text, expected):
    """parse_memory returns bytes for binary and decimal suffixes and plain numbers."""
    assert parse_memory(text) == expected


@pytest.mark.parametrize("text", ["16 GB", "4GB", "4gi", "Gi", "-1", "1e9", "", True, -5])
def test_parse_memory_rejects_other_spellings(text):
    """parse_memory raises ValueError saying what is allowed for anything else."""
    with pytest.raises(ValueError, match="memory quantity such as 512Mi"):
        parse_memory(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2", 2.0), ("0.5", 0.5), ("500m", 0.5), ("1500m", 1.5), (2, 2.0), (0.25, 0.25)],
)
def test_parse_cpu_accepts_kubernetes_spellings(text, expected):
    """parse_cpu returns cores for whole, fractional and milli-core quantities."""
    assert parse_cpu(text) == expected


@pytest.mark.parametrize("text", ["2 cores", "500M", "m", "-1", "", False, -0.5])
def test_parse_cpu_rejects_other_spellings(text):
    """parse_cpu raises ValueError saying what is allowed for anything else."""
    with pytest.raises(ValueError, match=r"CPU quantity such as 2, 0\.5 or 500m"):
        parse_cpu(text)


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [
        (4 * 2**30, "4 GiB"),
        (3 * 2**29, "1.5 GiB"),
        (512 * 2**20, "512 MiB"),
        (2**40, "1 TiB"),
        (500, "500 B"),
    ],
)
def test_format_memory(num_bytes, text):
    """format_memory renders bytes in the largest binary unit."""
    assert format_memory(num_bytes) == text


@pytest.mark.parametrize(("cores", "text"), [(1, "1 CPU"), (1.0, "1 CPU"), (2, "2 CPUs"), (0.5, "0.5 CPUs")])
def test_format_cpu(cores, text):
    """format_cpu renders a core count with the right plural."""
    assert format_cpu(cores) == text
