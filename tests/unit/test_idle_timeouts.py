"""Idle timeouts: a profile's range, the analyst's choice within it, and the culler's decision."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml
from analysis_hub.catalog import Catalog, CatalogError, Profile, load_catalog, resolve
from analysis_hub.culling import PerServerIdleCuller, cull_after_own_timeout, server_timeout
from analysis_hub.forms import render_profile_form
from analysis_hub.idle_timeouts import IdleTimeout, choose_idle_timeout, timeout_choices
from analysis_hub.quantities import format_duration, parse_duration
from analysis_hub.selection import ProfileRequestError, select_profile
from pydantic import ValidationError

SPARK = Profile(
    slug="pyspark",
    display_name="PySpark",
    image="pyspark",
    default=True,
    idle_timeout={"min": "10m", "max": "4h", "default": "30m"},
)
TORCH = Profile(
    slug="pytorch", display_name="PyTorch", image="pytorch", idle_timeout={"min": 600, "max": "30m"}
)
PLAIN = Profile(slug="tensorflow", display_name="TF", image="tensorflow")
CATALOG = Catalog(profiles=(SPARK, TORCH, PLAIN))


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("4h", 14400), ("600", 600), (45, 45), (" 2h ", 7200)]
)
def test_durations_parse(text, seconds):
    """Durations are whole seconds, or a number with s, m or h."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1.5h", "10 min", "-5", "1d", True, 2.5, -1])
def test_bad_durations_say_what_is_allowed(bad):
    """Anything else is refused with the accepted spellings."""
    with pytest.raises(ValueError, match="90s, 30m, 4h"):
        parse_duration(bad)


def test_durations_format_for_people():
    assert [format_duration(s) for s in (90, 600, 3600, 5400, 14400)] == ["90s", "10m", "1h", "1h 30m", "4h"]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"min": "1h", "max": "10m"}, "min '1h' is above max '10m'"),
        ({"min": "10m", "max": "1h", "default": "2h"}, "'2h' is outside the range min '10m' .. max '1h'"),
        ({"min": "1h", "max": "10m", "default": "2h"}, "min '1h' is above max '10m'"),
        ({"min": "0s", "max": "1h"}, "must be longer than 0 seconds"),
        ({"min": "10m", "max": "1h", "step": "5m"}, "Extra inputs are not permitted"),
        ({"min": "ten", "max": "1h"}, "is not a duration"),
    ],
)
def test_bad_ranges_are_refused(section, message):
    """A range out of order, a default outside it, a zero bound or an unknown key is a catalog error."""
    with pytest.raises(ValidationError, match=message):
        IdleTimeout.model_validate(section)


@pytest.mark.parametrize("default", ["5h", "5m"])
def test_a_default_outside_the_range_is_a_catalog_error_naming_file_and_key(catalog_dirs, default):
    """A profile file whose idle_timeout.default lies outside its own min..max is refused when the
    catalog loads, naming the file, the key and the range."""
    catalog_dir, images_dir = catalog_dirs
    path = catalog_dir / "pyspark.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["idle_timeout"] = {"min": "10m", "max": "4h", "default": default}
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(CatalogError) as refused:
        load_catalog(catalog_dir, images_dir)
    assert refused.value.problems == [
        f"{path}: idle_timeout.default: {default!r} is outside the range min '10m' .. max '4h'"
    ]


def test_the_shipped_catalog_keeps_spark_sessions_30_minutes_and_others_at_the_sites(repo_catalog):
    """The repository's catalog (issue 17): pyspark 10m to 4h with a 30-minute default, which the
    form preselects and a request without a choice gets; pytorch 10m to 30m with a 10-minute
    default (GPUs are scarce, whatever the site's timeout); tensorflow (10m to 2h) has no default
    of its own: the site's culler.timeout (10 minutes)."""
    bounds = {p.slug: p.idle_timeout.seconds for p in repo_catalog.profiles}
    assert bounds == {
        "pyspark": (600, 14400, 1800),
        "pytorch": (600, 1800, 600),
        "tensorflow": (600, 7200, None),
    }
    assert select_profile(repo_catalog, set(), {"profile": "pyspark"}).idle_timeout == 1800
    assert select_profile(repo_catalog, set(), {}).idle_timeout == 1800  # pyspark is the default profile
    assert select_profile(repo_catalog, set(), {"profile": "tensorflow"}).idle_timeout is None
    html = render_profile_form(list(repo_catalog.profiles))
    pyspark_choices = html.split('name="idle_timeout.pyspark"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\d*)" selected>', pyspark_choices) == ["1800"]
    pytorch_choices = html.split('name="idle_timeout.pytorch"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\d*)" selected>', pytorch_choices) == ["600"]


def test_the_default_and_choices_within_the_range():
    """No request: the profile's default, or None (the site's culler.timeout) when it has none;
    a request inside the range is taken, in any spelling."""
    assert choose_idle_timeout("pyspark", SPARK.idle_timeout, None) == 1800
    assert choose_idle_timeout("pytorch", TORCH.idle_timeout, None) is None
    assert choose_idle_timeout("tensorflow", None, None) is None
    assert choose_idle_timeout("pyspark", SPARK.idle_timeout, "2h") == 7200
    assert choose_idle_timeout("pyspark", SPARK.idle_timeout, 600) == 600
    assert choose_idle_timeout("pyspark", SPARK.idle_timeout, "14400") == 14400


@pytest.mark.parametrize(
    ("slug", "requested", "message"),
    [
        ("pyspark", "5m", "Idle timeout 5m is not offered for profile 'pyspark': pick one from 10m to 4h."),
        ("pytorch", "1h", "Idle timeout 1h is not offered for profile 'pytorch': pick one from 10m to 30m."),
        ("tensorflow", "30m", "Profile 'tensorflow' offers no idle timeout choice"),
        ("pyspark", "soon", "is not a duration"),
    ],
)
def test_requests_outside_the_range_are_refused_like_other_choices(slug, requested, message):
    """select_profile (every backend's 400) refuses a timeout outside the profile's range, naming it."""
    with pytest.raises(ProfileRequestError) as refused:
        select_profile(CATALOG, set(), {"profile": slug, "idle_timeout": requested})
    assert message in str(refused.value)


def test_bad_types_are_refused():
    with pytest.raises(ProfileRequestError, match="must be a duration"):
        select_profile(CATALOG, set(), {"profile": "pyspark", "idle_timeout": [600]})
    with pytest.raises(ProfileRequestError, match="is not a duration"):
        select_profile(CATALOG, set(), {"profile": "pyspark", "idle_timeout": True})


def test_the_resolved_profile_carries_the_chosen_seconds():
    """The chosen timeout rides on the resolved profile; without a request, the default."""
    assert select_profile(CATALOG, set(), {"profile": "pyspark", "idle_timeout": "1h"}).idle_timeout == 3600
    assert select_profile(CATALOG, set(), {}).idle_timeout == 1800
    assert select_profile(CATALOG, set(), {"profile": "pyspark", "idle_timeout": ""}).idle_timeout == 1800
    assert select_profile(CATALOG, set(), {"profile": "tensorflow"}).idle_timeout is None
    assert resolve(SPARK).idle_timeout == 1800


def test_form_steps_stay_inside_the_range():
    assert timeout_choices(SPARK.idle_timeout) == [
        m * 60 for m in (10, 15, 20, 30, 45, 60, 90, 120, 180, 240)
    ]
    assert timeout_choices(IdleTimeout(min="1m", max="3m")) == [60, 180]


def test_the_culler_decides_by_each_servers_own_timeout():
    """A server's recorded idle_timeout decides; without one (or a malformed one), the site's."""
    spark = {"name": "spark", "user_options": {"profile": "pyspark", "idle_timeout": 3600}}
    torch = {"name": "train", "user_options": {"profile": "pytorch"}}
    assert server_timeout(spark, 600) == 3600
    assert server_timeout(torch, 600) == 600
    assert server_timeout({"user_options": None}, 600) == 600
    assert server_timeout({"user_options": {"idle_timeout": "1h"}}, 600) == 600
    idle_20m = timedelta(minutes=20)
    assert not cull_after_own_timeout(inactive=idle_20m, inactive_limit=600, server=spark)
    assert cull_after_own_timeout(inactive=idle_20m, inactive_limit=600, server=torch)
    assert cull_after_own_timeout(inactive=timedelta(hours=1), inactive_limit=600, server=spark)


def test_the_culler_keeps_upstream_options_and_uses_our_decision():
    """`python -m analysis_hub.culling` parses jupyterhub-idle-culler's options and decides with ours."""
    culler = PerServerIdleCuller()
    culler.parse_command_line(["--timeout=60", "--cull-every=5", "--cull-users=false"])
    assert (culler.timeout, culler.cull_every, culler.cull_users) == (60, 5, False)
    assert culler.cull_arbiter_hook is cull_after_own_timeout
    assert culler.config_file == ""
