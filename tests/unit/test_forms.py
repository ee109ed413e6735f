"""The spawn form: every profile with its image and resources, unusable GPU options disabled."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from analysis_hub.catalog import Profile
from analysis_hub.forms import gpu_shortfall, render_profile_form


class FormParser(HTMLParser):
    """Collects the form's inputs and options with their attributes and texts."""

    def __init__(self):
        super().__init__()
        self.radios: dict[str, dict] = {}
        self.options: dict[tuple[str, str], dict] = {}
        self._select = None
        self._option = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "radio":
            self.radios[attrs["value"]] = attrs
        elif tag == "select":
            self._select = attrs["name"]
        elif tag == "option":
            self._option = (self._select, attrs["value"])
            self.options[self._option] = {**attrs, "text": ""}

    def handle_endtag(self, tag):
        if tag == "option":
            self._option = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._option:
            self.options[self._option]["text"] += data


def parse(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


def test_form_shows_every_profile_with_image_and_resources(repo_catalog):
    """Each profile's display name, image, CPU and memory appear in the form."""
    html = render_profile_form(list(repo_catalog.profiles))
    for name in ("PySpark", "PyTorch (GPU)", "TensorFlow"):
        assert f"<h4>{name}</h4>" in html
    for image in ("pyspark", "pytorch", "tensorflow"):
        assert f"image <code>{image}</code>" in html
    assert "CPU 1 CPU guaranteed, up to 2 CPUs · memory 2 GiB guaranteed, up to 4 GiB" in html  # pyspark
    assert "CPU 2 CPUs guaranteed, up to 4 CPUs · memory 8 GiB guaranteed, up to 16 GiB · 1 GPU" in html
    assert "memory 2 GiB guaranteed, up to 6 GiB" in html  # tensorflow


def test_form_radios_and_selects_match_options_from_form(repo_catalog):
    """The form's field names are 'profile' and 'choice.<slug>.<name>'; the default profile is checked."""
    form = parse(render_profile_form(list(repo_catalog.profiles)))
    assert set(form.radios) == {"pyspark", "pytorch", "tensorflow"}
    assert all(r["name"] == "profile" for r in form.radios.values())
    assert [slug for slug, r in form.radios.items() if "checked" in r] == ["pyspark"]
    assert {key for key in form.options if key[0].startswith("choice.")} == {
        ("choice.pyspark.size", "medium"),
        ("choice.pyspark.size", "large"),
        ("choice.pytorch.accelerator", "gpu"),
        ("choice.pytorch.accelerator", "gpu2"),
        ("choice.pytorch.accelerator", "cpu"),
    }
    assert "selected" in form.options[("choice.pyspark.size", "medium")]


def test_gpu_options_disabled_with_reason_without_gpus(repo_catalog):
    """With no GPUs, GPU options are disabled with the reason and the CPU option is preselected."""
    form = parse(render_profile_form(list(repo_catalog.profiles), gpus_available=0))
    for option in ("gpu", "gpu2"):
        attrs = form.options[("choice.pytorch.accelerator", option)]
        assert "disabled" in attrs
        assert "(needs a GPU; this machine has none)" in attrs["text"]
    cpu = form.options[("choice.pytorch.accelerator", "cpu")]
    assert "disabled" not in cpu and "selected" in cpu
    assert all("disabled" not in attrs for (select, _), attrs in form.options.items() if "pyspark" in select)


def test_gpu_options_enabled_when_gpus_exist(repo_catalog):
    """With enough GPUs nothing is disabled; with one GPU only the two-GPU option is."""
    form = parse(render_profile_form(list(repo_catalog.profiles), gpus_available=2))
    assert not any("disabled" in attrs for attrs in form.options.values())
    form = parse(render_profile_form(list(repo_catalog.profiles), gpus_available=1))
    disabled = {key[1]: a["text"] for key, a in form.options.items() if "disabled" in a}
    assert list(disabled) == ["gpu2"]
    assert "(needs 2 GPUs; this machine has 1)" in disabled["gpu2"]


def test_gpu_only_profile_is_not_selectable_without_gpus():
    """A profile that needs a GPU, with no CPU option, is shown with the reason and cannot be picked."""
    cpu = Profile(slug="cpu", display_name="CPU", image="tensorflow")
    gpu = Profile(slug="gpu", display_name="GPU", image="pytorch", gpus=1, default=True)
    html = render_profile_form([gpu, cpu], gpus_available=0)
    form = parse(html)
    assert "needs a GPU; this machine has none" in html
    assert "checked" not in form.radios["gpu"]
    assert "checked" in form.radios["cpu"]
    assert "disabled" in form.radios["gpu"]


def test_descriptions_are_html_escaped():
    """Catalog text is escaped: a <script> in a description is shown, never run."""
    profile = Profile(
        slug="x",
        display_name="X <b>bold</b>",
        image="pyspark",
        description='<script>alert("hi")</script>',
    )
    html = render_profile_form([profile])
    assert '<script>alert("hi")' not in html and html.count("<script>") == 1  # only the form's own
    assert "&lt;script&gt;alert(&#34;hi&#34;)&lt;/script&gt;" in html
    assert "X &lt;b&gt;bold&lt;/b&gt;" in html


def test_unlimited_resources_are_labelled():
    """A profile without bounds reads 'unlimited'; a guarantee alone reads 'guaranteed'."""
    html = render_profile_form(
        [
            Profile(slug="a", display_name="A", image="pyspark"),
            Profile(
                slug="b", display_name="B", image="pyspark", cpu={"guarantee": 2}, memory={"limit": "1Gi"}
            ),
        ]
    )
    assert "CPU unlimited · memory unlimited" in html
    assert "CPU 2 CPUs guaranteed · memory up to 1 GiB" in html


@pytest.mark.parametrize(
    ("needed", "available", "reason"),
    [
        (0, 0, ""),
        (1, None, ""),
        (1, 1, ""),
        (1, 0, "needs a GPU; this machine has none"),
        (2, 0, "needs a GPU; this machine has none"),
        (4, 2, "needs 4 GPUs; this machine has 2"),
    ],
)
def test_gpu_shortfall(needed, available, reason):
    """gpu_shortfall explains why GPUs can't be had, and is empty when they can (or aren't counted)."""
    assert gpu_shortfall(needed, available) == reason


def test_card_resources_follow_every_combination_of_choices(repo_catalog):
    """Each card with choices carries the resources of every option combination, for the form's script."""
    import html as html_lib
    import json
    import re

    html = render_profile_form(list(repo_catalog.profiles), gpus_available=2)
    tables = {
        slug: json.loads(html_lib.unescape(raw))
        for slug, raw in re.findall(r'data-profile="([a-z-]+)" data-resources="([^"]*)"', html)
    }
    assert set(tables) == {"pyspark", "pytorch"}, "tensorflow has no choices"
    assert tables["pyspark"] == {
        "medium": "CPU 1 CPU guaranteed, up to 2 CPUs · memory 2 GiB guaranteed, up to 4 GiB",
        "large": "CPU 2 CPUs guaranteed, up to 4 CPUs · memory 8 GiB guaranteed, up to 16 GiB",
    }
    assert (
        tables["pytorch"]["gpu2"]
        == "CPU 4 CPUs guaranteed, up to 8 CPUs · memory 16 GiB guaranteed, up to 32 GiB · 2 GPUs"
    )
    assert tables["pytorch"]["cpu"].endswith("up to 4 GiB"), "no GPU on the CPU-only option"


def test_form_offers_each_profiles_idle_timeouts_and_they_become_user_options():
    """A profile's idle-timeout range is a drop-down named idle_timeout.<slug> (its default selected,
    or the site's, named with its length, when it has none); the submitted value travels as
    user_options."""
    from analysis_hub.selection import options_from_form

    ranged = Profile(
        slug="spark",
        display_name="Spark",
        image="pyspark",
        idle_timeout={"min": "10m", "max": "1h", "default": "30m"},
    )
    site = Profile(
        slug="tf", display_name="TF", image="tensorflow", idle_timeout={"min": "10m", "max": "20m"}
    )
    plain = Profile(slug="plain", display_name="Plain", image="tensorflow")
    form = parse(render_profile_form([ranged, site, plain], site_idle_timeout=600))
    spark = {value: attrs for (name, value), attrs in form.options.items() if name == "idle_timeout.spark"}
    assert list(spark) == ["600", "900", "1200", "1800", "2700", "3600"]
    assert [v for v, attrs in spark.items() if "selected" in attrs] == ["1800"]
    assert spark["2700"]["text"].strip() == "45m" and spark["3600"]["text"].strip() == "1h"
    tf = {value: attrs for (name, value), attrs in form.options.items() if name == "idle_timeout.tf"}
    assert list(tf) == ["", "600", "900", "1200"] and "selected" in tf[""]
    assert tf[""]["text"].strip() == "10m (the site's default)"
    never = parse(render_profile_form([site], site_idle_timeout=0)).options[("idle_timeout.tf", "")]
    assert never["text"].strip() == "never (the site's default)"
    assert not any(name == "idle_timeout.plain" for name, _ in form.options)
    chosen = options_from_form(
        {"profile": ["spark"], "idle_timeout.spark": ["2700"], "idle_timeout.tf": ["600"]}
    )
    assert chosen == {"profile": "spark", "idle_timeout": "2700"}
    assert options_from_form({"profile": ["tf"], "idle_timeout.tf": [""]}) == {"profile": "tf"}
