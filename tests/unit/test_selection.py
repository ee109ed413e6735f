"""select_profile and options_from_form: what a spawn request may ask for."""

from __future__ import annotations

import pytest
from analysis_hub.catalog import load_catalog
from analysis_hub.selection import ProfileRequestError, options_from_form, select_profile

SECRET = """\
slug: secret
display_name: Secret
image: pytorch
allowed_groups: [gpu-team]
"""


@pytest.fixture
def catalog(catalog_dirs):
    """The repository's profiles plus 'secret', restricted to gpu-team."""
    catalog_dir, images_dir = catalog_dirs
    (catalog_dir / "secret.yaml").write_text(SECRET)
    return load_catalog(catalog_dir, images_dir)


def test_selects_requested_profile_and_choice(catalog):
    """A valid request returns that profile with the chosen option applied."""
    resolved = select_profile(catalog, set(), {"profile": "pytorch", "accelerator": "cpu"})
    assert resolved.slug == "pytorch"
    assert resolved.choices == {"accelerator": "cpu"}
    assert resolved.resources.gpus == 0


def test_default_profile_without_profile_key(catalog):
    """A request without 'profile' gets the catalog's default profile with default options."""
    for options in (None, {}):
        resolved = select_profile(catalog, set(), options)
        assert resolved.slug == "pyspark"
        assert resolved.choices == {"size": "medium"}


def test_default_profile_key_with_choices_only(catalog):
    """A request naming only a choice applies it to the default profile."""
    assert select_profile(catalog, set(), {"size": "large"}).choices == {"size": "large"}


def test_unknown_slug(catalog):
    """An unknown slug is refused, listing the profiles the user can use."""
    with pytest.raises(ProfileRequestError) as caught:
        select_profile(catalog, set(), {"profile": "rstudio"})
    assert (
        str(caught.value) == "Unknown profile 'rstudio'. Profiles you can use: pyspark, pytorch, tensorflow."
    )


@pytest.mark.parametrize("slug", ["../x", "a/b", "/etc/passwd", "PySpark", "", "x" * 40, 3, ["pyspark"]])
def test_slug_with_path_characters_or_wrong_type(catalog, slug):
    """A slug that is not a profile name (path characters, upper case, not a string) is refused."""
    with pytest.raises(ProfileRequestError, match="is not a profile name"):
        select_profile(catalog, set(), {"profile": slug})


def test_restricted_profile_looks_unknown_to_non_members(catalog):
    """A non-member asking for a group-restricted profile gets the same answer as for an unknown one."""
    with pytest.raises(ProfileRequestError) as hidden:
        select_profile(catalog, {"data-team"}, {"profile": "secret"})
    with pytest.raises(ProfileRequestError) as unknown:
        select_profile(catalog, {"data-team"}, {"profile": "nosuch"})
    available = "Profiles you can use: pyspark, pytorch, tensorflow."
    assert str(hidden.value) == f"Unknown profile 'secret'. {available}"
    assert str(unknown.value) == f"Unknown profile 'nosuch'. {available}"


def test_restricted_profile_allowed_for_members(catalog):
    """A member of an allowed group may start the restricted profile."""
    assert select_profile(catalog, {"gpu-team"}, {"profile": "secret"}).slug == "secret"


def test_invalid_choice_option(catalog):
    """An option the choice does not offer is refused, naming the allowed options."""
    with pytest.raises(ProfileRequestError) as caught:
        select_profile(catalog, set(), {"profile": "pyspark", "size": "huge"})
    assert str(caught.value) == "'huge' is not an option of 'pyspark' choice 'size' (options: large, medium)."


@pytest.mark.parametrize("value", [3, ["large"], {"x": 1}, None])
def test_non_string_choice_value(catalog, value):
    """A choice value that is not a string is refused, naming its type."""
    with pytest.raises(ProfileRequestError, match=r"Choice 'size' must be a string, got"):
        select_profile(catalog, set(), {"profile": "pyspark", "size": value})


@pytest.mark.parametrize("extra", [{"image": "pytorch"}, {"cpu": "64"}, {"env": "X=1"}])
def test_extra_key_cannot_smuggle_settings(catalog, extra):
    """Keys other than 'profile' that are not choices of the profile (image, cpu...) are refused."""
    key = next(iter(extra))
    with pytest.raises(ProfileRequestError, match=rf"Profile 'pyspark' has no choice '{key}'"):
        select_profile(catalog, set(), {"profile": "pyspark", **extra})


def test_no_profile_available(catalog_dirs):
    """A user whose groups allow no profile is told so."""
    catalog_dir, images_dir = catalog_dirs
    for path in catalog_dir.glob("*.yaml"):
        path.unlink()
    (catalog_dir / "secret.yaml").write_text(SECRET)
    with pytest.raises(ProfileRequestError, match="No profile is available to your groups"):
        select_profile(load_catalog(catalog_dir, images_dir), set(), {})


def test_default_falls_back_to_an_allowed_profile(catalog_dirs):
    """When the default profile is restricted, a non-member gets the first profile they may use."""
    catalog_dir, images_dir = catalog_dirs
    path = catalog_dir / "pyspark.yaml"
    path.write_text(path.read_text().replace("allowed_groups: []", "allowed_groups: [data-team]"))
    catalog = load_catalog(catalog_dir, images_dir)
    assert select_profile(catalog, set(), {}).slug == "pytorch"
    assert select_profile(catalog, {"data-team"}, {}).slug == "pyspark"


def test_options_from_form_maps_fields():
    """Form fields 'profile' and 'choice.<slug>.<name>' become user_options; other fields are ignored."""
    formdata = {
        "profile": ["pytorch"],
        "choice.pytorch.accelerator": ["cpu"],
        "choice.pyspark.size": ["large"],
        "choice.py.size": ["small"],
        "_xsrf": ["token"],
        "image": ["evil"],
    }
    assert options_from_form(formdata) == {"profile": "pytorch", "accelerator": "cpu"}


def test_options_from_form_feeds_select_profile(catalog):
    """What options_from_form returns is a request select_profile accepts."""
    options = options_from_form({"profile": ["pyspark"], "choice.pyspark.size": ["large"]})
    assert select_profile(catalog, set(), options).choices == {"size": "large"}


def test_options_from_form_without_profile():
    """A form without a profile field yields an empty slug (which select_profile then refuses)."""
    assert options_from_form({"choice.pyspark.size": ["large"]}) == {"profile": ""}
