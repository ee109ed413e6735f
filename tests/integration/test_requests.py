"""Spawn requests the catalog does not allow are refused with 400 and start nothing;
a catalog edited into an invalid state while the hub runs doesn't take it down.

The hub here serves a copy of the repository's catalog in which pytorch is
restricted to the `gpu-team` group (bob); alice is in `data-team`.
"""

from __future__ import annotations

import shutil
import time

import pytest
import yaml
from conftest import REPO, make_workdir, start_hub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def restricted_hub():
    workdir = make_workdir()
    catalog = workdir / "catalog"
    shutil.copytree(REPO / "profiles", catalog)
    pytorch = yaml.safe_load((catalog / "pytorch.yaml").read_text())
    pytorch["allowed_groups"] = ["gpu-team"]
    (catalog / "pytorch.yaml").write_text(yaml.safe_dump(pytorch))
    running = start_hub(workdir, catalog=str(catalog))
    running.catalog = catalog
    yield running
    running.stop()


def assert_refused(user, options, *fragments):
    response = user.start(options)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    for fragment in fragments:
        assert fragment in message, message
    assert "" not in user.model()["servers"], "a refused request must not leave a server behind"
    return message


def test_unknown_profile_is_refused(restricted_hub):
    """An unknown slug gets 400 naming the profiles the user can use."""
    assert_refused(restricted_hub.user("alice"), {"profile": "rstudio"}, "Unknown profile", "pyspark")


def test_profile_outside_users_groups_is_refused_like_an_unknown_one(restricted_hub):
    """A profile restricted to other groups is refused and not revealed."""
    message = assert_refused(restricted_hub.user("alice"), {"profile": "pytorch"}, "Unknown profile")
    assert "pytorch" not in message.split("use:")[1]


def test_invalid_choice_is_refused(restricted_hub):
    """An option a choice does not offer gets 400 listing the offered options."""
    assert_refused(
        restricted_hub.user("alice"), {"profile": "pyspark", "size": "huge"}, "'huge'", "large, medium"
    )


def test_request_cannot_smuggle_an_image(restricted_hub):
    """Keys other than the profile's choices (an image, say) are refused."""
    assert_refused(
        restricted_hub.user("alice"), {"profile": "tensorflow", "image": "evil"}, "no choice 'image'"
    )


@pytest.mark.parametrize("slug", ["../pyspark", "pyspark/../x", "PySpark", "", "x" * 300])
def test_slug_with_path_characters_is_refused(restricted_hub, slug):
    """Slugs that are not catalog names (path characters, case, length) get 400."""
    assert_refused(restricted_hub.user("alice"), {"profile": slug}, "not a profile name")


def test_gpu_profile_on_a_machine_without_gpu_is_refused(restricted_hub):
    """The GPU option of pytorch is refused with a clear message on a machine with no GPU."""
    assert_refused(restricted_hub.user("bob"), {"profile": "pytorch"}, "needs a GPU", "CPU option")


def test_spawn_form_shows_only_the_users_profiles(restricted_hub):
    """The form lists pytorch for the gpu-team member and hides it from others."""
    alice, bob = restricted_hub.user("alice"), restricted_hub.user("bob")
    alice_form = alice.session.get(f"{restricted_hub.url}/hub/spawn").text
    bob_form = bob.session.get(f"{restricted_hub.url}/hub/spawn").text
    assert 'value="pyspark"' in alice_form and 'value="pytorch"' not in alice_form
    assert 'value="pytorch"' in bob_form
    assert "needs a GPU; this machine has none" in bob_form


def test_broken_catalog_keeps_the_last_good_one(restricted_hub):
    """An invalid catalog edit is logged and ignored; a valid one then takes effect."""
    tensorflow = restricted_hub.catalog / "tensorflow.yaml"
    good = tensorflow.read_text()
    alice = restricted_hub.user("alice")
    try:
        tensorflow.write_text(good.replace("limit: 6Gi", "limit: 6 GB"))
        form = alice.session.get(f"{restricted_hub.url}/hub/spawn")
        assert form.status_code == 200 and 'value="tensorflow"' in form.text
        assert "still serving the last good catalog" in restricted_hub.log()
        assert "'6 GB' is not a memory quantity" in restricted_hub.log()
        assert alice.model()["name"] == "alice"  # the hub itself is fine

        tensorflow.write_text(good.replace("display_name: TensorFlow", "display_name: TensorFlow Edited"))
        time.sleep(0.05)
        assert "TensorFlow Edited" in alice.session.get(f"{restricted_hub.url}/hub/spawn").text
    finally:
        tensorflow.write_text(good)
