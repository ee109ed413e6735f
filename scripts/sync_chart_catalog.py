"""Keep the Helm chart's default catalog and its schema equal to profiles/.

The catalog's single source of truth is profiles/*.yaml. The chart carries a
copy as its default `catalog:` values (between the BEGIN/END markers in
helm/analysis-hub/values.yaml) and the catalog's JSON Schema as the
definitions `values.schema.json` checks each profile against, so a bad
profile fails `helm upgrade` instead of the hub's next reload.

    python scripts/sync_chart_catalog.py          # rewrite both from profiles/
    python scripts/sync_chart_catalog.py --check  # exit 1 when they drifted

tests/unit/test_chart.py fails when they drift.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILES = REPO / "profiles"
CHART = REPO / "helm" / "analysis-hub"
BEGIN = "# BEGIN catalog (generated from profiles/ by scripts/sync_chart_catalog.py)\n"
END = "# END catalog\n"
# Definitions values.schema.json keeps for itself; every other one comes from profiles/schema.json.
CHART_OWN_DEFINITIONS = ("Port", "Network")


def catalog_from_profiles(profiles_dir: Path = PROFILES) -> dict:
    """slug -> profile data, exactly as the profile files hold it."""
    catalog = {}
    for path in sorted(profiles_dir.glob("*.yaml")):
        profile = yaml.safe_load(path.read_text())
        catalog[profile["slug"]] = profile
    return catalog


def catalog_block(catalog: dict) -> str:
    body = yaml.safe_dump({"catalog": catalog}, sort_keys=False, default_flow_style=False, width=100)
    return BEGIN + body + END


def values_with_catalog(values_text: str, catalog: dict) -> str:
    start, end = values_text.index(BEGIN), values_text.index(END) + len(END)
    return values_text[:start] + catalog_block(catalog) + values_text[end:]


def schema_with_profile_definitions(schema: dict, profile_schema: dict) -> dict:
    """The chart's schema, its profile definitions replaced by profiles/schema.json's."""
    own = schema.get("$defs", {})
    definitions = {name: own[name] for name in CHART_OWN_DEFINITIONS if name in own}
    definitions.update(profile_schema.get("$defs", {}))
    definitions["Profile"] = {k: v for k, v in profile_schema.items() if k != "$defs"}
    return {**schema, "$defs": definitions}


def expected_files() -> dict[Path, str]:
    values_path, schema_path = CHART / "values.yaml", CHART / "values.schema.json"
    profile_schema = json.loads((PROFILES / "schema.json").read_text())
    schema = schema_with_profile_definitions(json.loads(schema_path.read_text()), profile_schema)
    return {
        values_path: values_with_catalog(values_path.read_text(), catalog_from_profiles()),
        schema_path: json.dumps(schema, indent=2) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    args = parser.parse_args(argv)
    drifted = [path for path, text in expected_files().items() if path.read_text() != text]
    if args.check:
        for path in drifted:
            print(f"{path.relative_to(REPO)}: differs from profiles/; run scripts/sync_chart_catalog.py")
        return 1 if drifted else 0
    for path, text in expected_files().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
