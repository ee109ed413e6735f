"""Each curated profile spawns through the REST API and runs code in its kernel.

A real hub (`analysis-hub up`: JupyterHub, configurable-http-proxy, idle
culler) on loopback, the local backend building each image's environment
from its lock file on first use. No GPU exists here, so pytorch runs its
"CPU only" option; the GPU refusal is asserted in test_requests.py.
"""

from __future__ import annotations

import json
import time

import pytest
from kernels import run_code

pytestmark = pytest.mark.integration

PROFILES = {
    "pyspark": (
        {"profile": "pyspark"},
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.master('local[1]').getOrCreate()\n"
        "print(spark.range(1000).filter('id % 2 = 0').count())",
        "500",
    ),
    "pytorch": (
        {"profile": "pytorch", "accelerator": "cpu"},
        "import torch\nprint(int(torch.arange(10).sum()), torch.cuda.is_available())",
        "45 False",
    ),
    "tensorflow": (
        {"profile": "tensorflow"},
        "import tensorflow as tf\nprint(int(tf.reduce_sum(tf.range(10))))",
        "45",
    ),
}


@pytest.mark.parametrize("slug", list(PROFILES))
def test_profile_spawns_and_runs_code_in_its_environment(hub, slug):
    """A spawn of each profile reports progress, becomes ready, and its kernel runs that image's stack."""
    user_options, code, expected = PROFILES[slug]
    alice = hub.user("alice")
    requested = time.monotonic()
    response = alice.start(user_options)
    assert response.status_code in (201, 202), response.text
    events = alice.progress_events()
    ready_after = time.monotonic() - requested
    assert events[-1].get("ready"), events
    try:
        output = run_code(alice, code, timeout=600)
        assert output.split() == expected.split()
        facts = json.loads(
            run_code(
                alice,
                "import json, os, sys, getpass\n"
                "print(json.dumps({'profile': os.environ['ANALYSIS_HUB_PROFILE'], 'prefix': sys.prefix,"
                " 'user': getpass.getuser(), 'home': os.environ['HOME'], 'cwd': os.getcwd()}))",
            )
        )
        assert facts["profile"] == slug
        assert f"/{slug}-" in facts["prefix"], "the kernel must run in the image's own environment"
        assert facts["user"] == "jupyter-alice"
        assert facts["cwd"] == facts["home"]
    finally:
        alice.stop()
    print(f"{slug}: spawn request to ready in {ready_after:.1f} s")
