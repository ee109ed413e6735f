"""A fourth curated image is a folder under images/, not edits across the code.

The promise (issue: "image capabilities as data"): a folder `images/<name>/` with a
Dockerfile, a lock file and an `image.yaml` declaring its capabilities makes the image
known to the catalog check, the image build's list, the chart's image list and every
backend's translation, with no other file edited.
"""

from __future__ import annotations

import shutil
import sys

import yaml
from analysis_hub.backends.docker.translate import DockerHostFacts, docker_server_settings
from analysis_hub.backends.kubernetes.translate import ClusterFacts, pod_override
from analysis_hub.catalog import CatalogError, load_catalog, resolve
from analysis_hub.images import ImageDefinitionError, discover_images, hadoop_images
from unit_support import IMAGES, PROFILES, REPO

sys.path.insert(0, str(REPO / "scripts"))
import build_images
import helm_values

RAPIDS = "rapids"


def with_a_fourth_image(tmp_path):
    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)
    folder = images / RAPIDS
    folder.mkdir()
    (folder / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    (folder / "requirements.txt").write_text("papermill==2.7.0\n")
    (folder / "image.yaml").write_text("display_name: RAPIDS\ncuda: true\nhadoop_client: true\n")
    catalog = tmp_path / "profiles"
    shutil.copytree(PROFILES, catalog)
    (catalog / "rapids.yaml").write_text("slug: rapids\ndisplay_name: RAPIDS\nimage: rapids\n")
    return images, catalog


def test_a_fourth_image_folder_reaches_the_catalog_the_build_and_the_chart(tmp_path):
    """With only the new folder added: the catalog accepts a profile naming it, the build
    lists it between base and the hub (and its proxy), and the chart's image list gets its tag."""
    images, catalog = with_a_fourth_image(tmp_path)
    assert "rapids" in [p.slug for p in load_catalog(catalog, images).profiles]
    order = build_images.build_order(images)
    assert order[0] == "base" and order[-2:] == ("hub", "proxy") and RAPIDS in order[1:-2]
    tags = {name: f"analysis-hub/{name}:0123456789ab" for name in order}
    report = helm_values.write_image_tags(tags, tmp_path / "absent" / "values.yaml", images_dir=images)
    overlay = yaml.safe_load((tmp_path / "absent" / "image-tags.yaml").read_text())
    assert overlay["images"][RAPIDS] == tags[RAPIDS], report
    # Without the folder, the same profile is refused, naming the file to add.
    shutil.rmtree(images / RAPIDS)
    try:
        load_catalog(catalog, images)
    except CatalogError as e:
        assert f"unknown image 'rapids': no {images / RAPIDS / 'image.yaml'}" in str(e)
    else:
        raise AssertionError("a profile naming a missing image was accepted")


def test_a_fourth_images_capabilities_reach_every_backends_translation(tmp_path):
    """hadoop_client: true in image.yaml mounts the Hadoop configuration in docker containers
    and Kubernetes pods of the new image; no translator names images."""
    images, catalog = with_a_fourth_image(tmp_path)
    facts = discover_images(images)
    assert facts[RAPIDS].cuda and facts[RAPIDS].hadoop_client
    resolved = resolve(load_catalog(catalog, images).get(RAPIDS))
    docker = docker_server_settings(
        resolved,
        DockerHostFacts(
            images={RAPIDS: "analysis-hub/rapids:1"},
            name_prefix="analysis-hub-test",
            hadoop_conf_dir="/srv/hadoop",
            hadoop_images=hadoop_images(facts),
        ),
    )
    assert docker.environment["HADOOP_CONF_DIR"] == "/etc/hadoop/conf"
    pod = pod_override(
        resolved,
        ClusterFacts(
            images={RAPIDS: "registry/rapids:1"},
            hadoop_configmap="hadoop",
            hadoop_images=hadoop_images(facts),
        ),
    )
    assert any(v.get("configMap", {}).get("name") == "hadoop" for v in pod["volumes"])


def test_a_bad_image_definition_names_the_file_and_the_key(tmp_path):
    """A typo in image.yaml is refused with the file, the key and what is allowed."""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "image.yaml").write_text("cudaa: true\n")
    try:
        discover_images(tmp_path)
    except ImageDefinitionError as e:
        allowed = "cuda, display_name, hadoop_client"
        assert str(e) == f"{tmp_path / 'x' / 'image.yaml'}: cudaa: unknown key (allowed: {allowed})"
    else:
        raise AssertionError("an unknown key was accepted")
