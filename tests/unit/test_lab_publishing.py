"""The pieces behind JupyterLab's "Publish as pipeline…" that run without a browser.

Issue 15: the cron preview says what the scheduler will do; servers hold a
token that reaches the pipelines service (and only what their user may);
the extension's wheel lands in local environments as pip would put it and
in every notebook image's build context.
"""

from __future__ import annotations

import sys
import zipfile
from datetime import UTC, datetime

import pytest
from analysis_hub.backends import backend_for
from analysis_hub.config import PIPELINES_ACCESS, apply_settings, pipelines_service_prefix
from analysis_hub.pipelines.publishing.cron_words import cron_trigger, describe, next_times
from analysis_hub.pipelines.publishing.specs import SpecError
from analysis_hub.runtime.lab_extension import LAB_MARKER, built_wheel, install_wheel
from analysis_hub.settings import load_settings
from test_config import USER_WITHOUT_CGROUPS
from traitlets.config import Config
from unit_support import REPO

sys.path.insert(0, str(REPO / "scripts"))

import build_images

WEDNESDAY_NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 6 * * 1-5", "weekdays at 06:00 Europe/Paris"),
        ("30 9 * * mon", "on Mondays at 09:30 Europe/Paris"),
        ("0 6 * * 0,6", "weekends at 06:00 Europe/Paris"),
        ("*/15 * * * *", "every 15 minutes, every day Europe/Paris"),
        ("0 0 1 * *", "on the 1st of every month at 00:00 Europe/Paris"),
        ("0 7 15 1,6 *", "on the 15th of January and June at 07:00 Europe/Paris"),
        ("0 8,12,18 * * *", "every day at 08:00, 12:00, 18:00 Europe/Paris"),
        ("0 */2 * * *", "every 2 hours at minute 0, every day Europe/Paris"),
    ],
)
def test_a_schedule_in_words(expression, words):
    """The dialog's preview says a cron expression as a person would."""
    assert describe(expression, "Europe/Paris") == words


def test_weekday_numbers_mean_what_cron_means_in_the_preview_and_the_scheduler():
    """'1-5' is Monday to Friday and 0 and 7 are Sunday, for the preview's next runs and for the
    trigger the scheduler runs (APScheduler 3's own from_crontab counts from Monday = 0, which
    would run '1-5' Tuesday to Saturday)."""
    times = next_times("0 6 * * 1-5", "Europe/Paris", WEDNESDAY_NOON, count=5)
    assert [t.strftime("%a %H:%M") for t in times] == ["Thu 06:00", "Fri 06:00", "Mon 06:00", "Tue 06:00",
                                                       "Wed 06:00"]  # fmt: skip
    for field, first in (("0", "Sun"), ("7", "Sun"), ("6", "Sat"), ("sat-sun", "Sat"), ("*/2", "Thu")):
        fire = cron_trigger(f"0 6 * * {field}", "UTC").get_next_fire_time(None, WEDNESDAY_NOON)
        assert fire.strftime("%a") == first, field


@pytest.mark.parametrize(
    ("expression", "timezone", "named"),
    [
        ("0 6 * *", "UTC", r"^schedule: '0 6 \* \*' is not a cron expression"),
        ("0 25 * * *", "UTC", "^schedule: "),
        ("0 6 * * *", "Mars/Base", "^timezone: 'Mars/Base'"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(expression, timezone, named):
    """A bad expression or time zone gets the same kind of message a deploy gets."""
    with pytest.raises(SpecError, match=named):
        describe(expression, timezone)


def test_servers_hold_a_token_for_the_pipelines_service_and_know_its_address(tmp_path):
    """Every backend's servers get JupyterHub's `server` scopes plus access to the pipelines
    service (granted only as far as the user holds it), and the service's URL through the proxy."""
    settings = load_settings(None, environ={})
    c = apply_settings(settings, Config(), USER_WITHOUT_CGROUPS)
    assert c.CatalogSpawnerMixin.server_token_scopes == [
        "users:activity!user",
        "access:servers!server",
        PIPELINES_ACCESS,
    ]
    assert any(
        PIPELINES_ACCESS in role["scopes"] for role in c.JupyterHub.load_roles if role["name"] == "user"
    )
    assert c.CatalogSpawnerMixin.pipelines_url == "http://127.0.0.1:8000/services/pipelines/"
    kube = settings.model_copy(update={"backend": "kubernetes"})
    prefix = pipelines_service_prefix("/")
    assert backend_for(kube).pipelines_url(kube, prefix) == "http://proxy-public/services/pipelines/"
    # The docker backend's containers reach the service itself on the bridge's gateway.
    docker_settings = settings.docker.model_copy(update={"network_subnet": "10.200.0.0/24"})
    on_docker = settings.model_copy(update={"backend": "docker", "docker": docker_settings})
    port = settings.pipelines.port
    assert (
        backend_for(on_docker).pipelines_url(on_docker, prefix)
        == f"http://10.200.0.1:{port}/services/pipelines/"
    )


def fake_wheel(path, chunk: str) -> None:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("analysis_hub_lab/__init__.py", "# extension\n")
        data = "analysis_hub_lab-0.1.0.data/data/"
        wheel.writestr(f"{data}share/jupyter/labextensions/analysis-hub-lab/static/{chunk}.js", chunk)
        wheel.writestr(f"{data}etc/jupyter/jupyter_server_config.d/analysis_hub_lab.json", "{}")
        wheel.writestr("analysis_hub_lab-0.1.0.dist-info/RECORD", "")


def test_the_wheel_lands_in_an_environment_as_pip_would_put_it_and_replaces_the_last(tmp_path):
    """The package in site-packages, the labextension and server config under the prefix; the
    same wheel again changes nothing; a new build replaces the old chunks (none linger)."""
    env = tmp_path / "env"
    site = env / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    first, second = tmp_path / "a" / "w.whl", tmp_path / "b" / "w.whl"
    for wheel, chunk in ((first, "one"), (second, "two")):
        wheel.parent.mkdir()
        fake_wheel(wheel, chunk)
    labext = env / "share/jupyter/labextensions/analysis-hub-lab/static"

    assert install_wheel(env, first)
    assert (site / "analysis_hub_lab" / "__init__.py").is_file()
    assert (env / "etc/jupyter/jupyter_server_config.d/analysis_hub_lab.json").is_file()
    assert [p.name for p in labext.iterdir()] == ["one.js"]
    assert not (site / "analysis_hub_lab-0.1.0.dist-info").exists()
    assert not install_wheel(env, first)
    assert install_wheel(env, second)
    assert [p.name for p in labext.iterdir()] == ["two.js"]
    assert (env / LAB_MARKER).is_file()


def test_every_notebook_image_installs_the_built_wheel_last(tmp_path):
    """Each notebook image's build context carries the wheel `make lab` built, and its Dockerfile
    installs it after the lock file (a late layer: the big pip layers stay cached)."""
    wheel = built_wheel(REPO)
    assert wheel is not None, "build the extension first: make lab"
    for image in ("pyspark", "pytorch", "tensorflow"):
        context = tmp_path / image
        context.mkdir()
        build_images.stage_context(image, context)
        assert (context / "lab" / wheel.name).read_bytes() == wheel.read_bytes()
        dockerfile = (REPO / "images" / image / "Dockerfile").read_text()
        assert dockerfile.index("COPY lab/") > dockerfile.index("install-python-lock")
    base = tmp_path / "base"
    base.mkdir()
    build_images.stage_context("base", base)
    assert not (base / "lab").exists()
