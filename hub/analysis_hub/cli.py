"""The `analysis-hub` command.

    analysis-hub up [--config FILE]             run the hub (JupyterHub + proxy + services);
                                                SIGTERM/SIGINT stop them, users' servers keep running
    analysis-hub profiles list [--json]         the catalog as the hub sees it
    analysis-hub profiles check [PATH]          validate a catalog; non-zero exit on errors
    analysis-hub profiles schema                print the catalog's JSON Schema
    analysis-hub users set-password NAME        set a built-in login password (from stdin)
    analysis-hub pipelines ACTION ...           publish, deploy, run notebooks (see --help)
    analysis-hub usage [--since 30d] [--by team|user|profile] [--csv]
                                                server and pipeline hours, CPU, memory, GPUs

Every subcommand takes `--config FILE` (default: $ANALYSIS_HUB_SETTINGS, else
built-in defaults). Errors go to stderr as `file: key: reason` lines and
exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .errors import CatalogError, SettingsError

if TYPE_CHECKING:
    from .backends import HostFacts
    from .settings import Settings

# Each command imports what it needs inside its function: `--help`, `profiles`
# and `pipelines` must not pay for JupyterHub, OAuthenticator and jsonschema
# (1.7 s of imports), which only `up` uses. tests/unit/test_cli_imports.py keeps it so.


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except (SettingsError, CatalogError) as e:
        print(f"analysis-hub: {e}", file=sys.stderr)
        return 2


def cmd_up(args) -> int:
    import gc
    import os
    import signal
    from pathlib import Path

    from . import leftovers
    from .backends import HostFacts
    from .catalog import load_catalog
    from .config import apply_settings
    from .settings import SETTINGS_PATH_ENV
    from .startup import prepare

    settings = _settings(args)
    load_catalog(
        settings.catalog, settings.images_dir, _known_images(settings)
    )  # refuse to start on a broken catalog
    host = HostFacts.detect()
    problems = preflight(settings, host)
    if not _errors(problems):
        problems += leftovers.clear_leftovers(settings)
    if not _errors(problems):
        problems += leftovers.port_problems(settings)
    for problem in problems:
        print(f"analysis-hub: {problem}", file=sys.stderr)
    if _errors(problems):
        return 2
    settings, credentials = prepare(settings)
    if settings.auth.type == "builtin":
        _show_initial_passwords(settings)
    print(
        f"analysis-hub: hub at http://{settings.hub.ip}:{settings.hub.port}{settings.hub.base_url}",
        flush=True,
    )

    from traitlets.config import Config

    from .hubapp import AnalysisHub

    if args.config:
        os.environ[SETTINGS_PATH_ENV] = str(Path(args.config).resolve())
    # A shell's background job starts with SIGINT ignored, and the services and servers the
    # hub starts would inherit that: JupyterHub stops a server with SIGINT first.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # The singleton created with our config is the one launch_instance runs.
    hub = AnalysisHub.instance(config=apply_settings(settings, Config(), host, credentials))
    AnalysisHub.launch_instance([])
    # The interpreter's teardown would garbage-collect every object JupyterHub holds, about
    # two seconds of a stop; they go with the process anyway.
    gc.freeze()
    servers = hub.servers_left_running
    print(
        "analysis-hub: stopped the hub, its services and the proxy. "
        + (f"{servers} user server(s) keep running" if servers else "User servers keep running")
        + " on purpose: the next `analysis-hub up` finds them again (stop a server from the"
        " admin page to end it).",
        flush=True,
    )
    return 0


def _errors(problems: list[str]) -> bool:
    return any(p.startswith("error:") for p in problems)


def preflight(settings: Settings, host: HostFacts) -> list[str]:
    """What `up` must tell the admin before starting: warnings and errors."""
    import shutil

    from .backends import backend_for

    problems = []
    if not shutil.which(settings.hub.proxy_command[0]):
        problems.append(
            f"error: proxy command {settings.hub.proxy_command[0]!r} not found; run `make install`"
            " (npm installs configurable-http-proxy) or set hub.proxy_command"
        )
    return problems + backend_for(settings).preflight(settings, host)


def _show_initial_passwords(settings: Settings) -> None:
    from .auth import PasswordStore, ensure_initial_passwords

    created = ensure_initial_passwords(
        PasswordStore(settings.hub_state_dir / "passwords.json"), settings.auth.admins + settings.auth.users
    )
    if created:
        print(
            "First start: these are the initial passwords (shown once; change them with"
            " `analysis-hub users set-password NAME`):"
        )
        for user, password in created.items():
            print(f"  {user}: {password}")


def cmd_profiles_list(args) -> int:
    import json

    from .catalog import load_catalog, profile_summary
    from .quantities import format_cpu, format_memory

    settings = _settings(args)
    catalog = load_catalog(settings.catalog, settings.images_dir, _known_images(settings))
    rows = [profile_summary(p) for p in catalog.profiles]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("SLUG", "NAME", "IMAGE", "CPU (guar/limit)", "MEMORY (guar/limit)", "GPUS", "GROUPS")
    table = [header] + [
        (
            r["slug"] + (" *" if r["default"] else ""),
            r["display_name"],
            r["image"],
            f"{_fmt(r['cpu_guarantee'], format_cpu)} / {_fmt(r['cpu_limit'], format_cpu)}",
            f"{_fmt(r['memory_guarantee'], format_memory)} / {_fmt(r['memory_limit'], format_memory)}",
            str(r["gpus"]),
            ", ".join(r["allowed_groups"]) or "everyone",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("(* = default profile)")
    return 0


def cmd_profiles_check(args) -> int:
    from pathlib import Path

    from .catalog import load_catalog

    settings = _settings(args)
    path = Path(args.path) if args.path else settings.catalog
    images = Path(args.images) if args.images else settings.images_dir
    catalog = load_catalog(path, images, None if args.images else _known_images(settings))
    print(f"{path}: OK, {len(catalog.profiles)} profiles: {', '.join(p.slug for p in catalog.profiles)}")
    return 0


def cmd_profiles_schema(args) -> int:
    import json

    from .catalog import Profile

    print(json.dumps(Profile.model_json_schema(), indent=2))
    return 0


def cmd_users_set_password(args) -> int:
    import getpass

    from .auth import PasswordStore
    from .startup import prepare_data_dir

    settings = _settings(args)
    if settings.auth.type != "builtin":
        print(
            f"analysis-hub: auth.type is {settings.auth.type}: passwords live at the identity provider",
            file=sys.stderr,
        )
        return 2
    declared = set(settings.auth.admins) | set(settings.auth.users)
    if args.name not in declared:
        print(f"analysis-hub: {args.name!r} is not declared in auth.users or auth.admins", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass()
    if len(password) < 8:
        print("analysis-hub: a password needs at least 8 characters", file=sys.stderr)
        return 2
    prepare_data_dir(settings)
    PasswordStore(settings.hub_state_dir / "passwords.json").set_password(args.name, password)
    print(f"password set for {args.name}")
    return 0


def _known_images(settings: Settings) -> tuple[str, ...] | None:
    from .backends import backend_for

    return backend_for(settings).known_images(settings)


def cmd_usage(args) -> int:
    import csv
    import time
    from datetime import UTC, datetime

    from .pipelines.store.state_folder import SQLITE_FILES
    from .usage import COLUMNS, USAGE_FILE, UsageLog, parse_since, pipeline_sessions, report

    settings = _settings(args)
    until = time.time()
    try:
        since = parse_since(args.since, datetime.now(UTC)).timestamp()
    except ValueError as e:
        print(f"analysis-hub: {e}", file=sys.stderr)
        return 2
    sessions = UsageLog(settings.hub_state_dir / USAGE_FILE).sessions(since)
    pipelines = settings.pipelines
    database = pipelines.database_url or f"sqlite:///{pipelines.data_dir / SQLITE_FILES[0]}"
    if pipelines.database_url or (pipelines.data_dir / SQLITE_FILES[0]).exists():
        sessions += pipeline_sessions(database, since)
    rows = report(sessions, since, until, args.by)
    header = [args.by, "kind", *COLUMNS]
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows([row[args.by], row["kind"], *(f"{row[c]:.4f}" for c in COLUMNS)] for row in rows)
        return 0
    table = [header] + [[row[args.by], row["kind"], *(f"{row[c]:.2f}" for c in COLUMNS)] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _settings(args) -> Settings:
    from .settings import load_settings

    return load_settings(args.config)


def _fmt(value, formatter) -> str:
    return "-" if value is None else formatter(value)


def _parser() -> argparse.ArgumentParser:
    from .pipelines import client as pipelines_client

    parser = argparse.ArgumentParser(prog="analysis-hub", description=__doc__.split("\n\n")[0])
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", help="settings YAML file (default: $ANALYSIS_HUB_SETTINGS)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    up = commands.add_parser("up", parents=[config], help="run the hub")
    up.set_defaults(func=cmd_up)

    profiles = commands.add_parser("profiles", help="the profile catalog").add_subparsers(
        required=True, metavar="ACTION"
    )
    listing = profiles.add_parser("list", parents=[config], help="list profiles")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_profiles_list)
    check = profiles.add_parser("check", parents=[config], help="validate a catalog folder")
    check.add_argument("path", nargs="?", help="catalog folder (default: the settings' catalog)")
    check.add_argument("--images", help="images folder (default: the settings' images_dir)")
    check.set_defaults(func=cmd_profiles_check)
    schema = profiles.add_parser("schema", help="print the catalog JSON Schema")
    schema.set_defaults(func=cmd_profiles_schema)

    users = commands.add_parser("users", help="built-in login users").add_subparsers(
        required=True, metavar="ACTION"
    )
    set_password = users.add_parser("set-password", parents=[config], help="password from stdin")
    set_password.add_argument("name")
    set_password.set_defaults(func=cmd_users_set_password)

    usage = commands.add_parser("usage", parents=[config], help="usage for chargeback")
    usage.add_argument("--since", default="30d", help="30d, 12h, 90m, 45s or an ISO date (default 30d)")
    usage.add_argument("--by", choices=("team", "user", "profile"), default="team")
    usage.add_argument("--csv", action="store_true", help="CSV with 4 decimals")
    usage.set_defaults(func=cmd_usage)

    pipelines_client.add_parser(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
