"""`analysis-hub pipelines ...`: the command line for the pipelines service's REST API.

    publish NOTEBOOK|pipeline.yaml --team T [--profile P] [--name N] [--choice k=v] [-m MSG]
            [--from-server] [--deploy] [--schedule CRON [--timezone TZ]] [-p name=value ...]
    versions TEAM/NAME           diff TEAM/NAME A B
    deploy TEAM/NAME [--version N] [--schedule CRON | --trigger manual|cron|http|after] [-p ...]
           [--concurrency forbid|allow] [--timeout S] [--retries N] [--pause | --resume] [--notify URL]
           [--after TEAM/NAME [--after-on success|failure|any]] [--subscribers TEAM,...]
    rollback TEAM/NAME --to N    run TEAM/NAME [-p ...] [--wait]
    runs TEAM/NAME               logs RUN_ID [--step S]  steps RUN_ID   audit [TEAM[/NAME]]
    repair RUN_ID                approve|reject RUN_ID STEP [-m COMMENT]

The service URL comes from --url or $ANALYSIS_HUB_PIPELINES_URL (default
http://127.0.0.1:8000/services/pipelines/), the hub API token from --token or
$JUPYTERHUB_API_TOKEN. Refusals print the service's message and exit 2.
A `--schedule` without `--trigger` deploys the `cron` trigger: the service
applies the trigger defaults (`triggers.py`), the client sends what was given.
`publish` deploys only with --deploy, --schedule or -p, and then sends only
those: the deployment keeps its schedule, parameters and webhook otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

# `requests` is imported where a request is made: building the parser (every
# `analysis-hub` command, `--help` included) must stay cheap.
from .statuses import FINISHED
from .triggers import AFTER_ON, TRIGGERS

DEFAULT_URL = "http://127.0.0.1:8000/services/pipelines/"


class ClientError(Exception):
    pass


class Client:
    def __init__(self, url: str, token: str):
        import requests

        self.url = url.rstrip("/") + "/api/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def call(self, method: str, path: str, body: dict | None = None, raw: bool = False):
        response = self.session.request(method, self.url + path, json=body, timeout=60)
        if response.status_code >= 400:
            try:
                message = response.json()["message"]
            except (ValueError, KeyError):
                message = response.text[:300]
            raise ClientError(f"{response.status_code}: {message}")
        return response.text if raw else response.json()


def pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClientError(f"{what} {item!r}: write it as name=value")
        out[key] = value
    return out


def workflow_upload(spec_path: Path) -> dict:
    """pipeline.yaml and the notebooks its steps name, read from the spec's folder."""
    import yaml

    text = spec_path.read_text()
    try:
        steps = (yaml.safe_load(text) or {}).get("steps") or []
    except (yaml.YAMLError, AttributeError):
        steps = []  # the service names what is wrong with it
    files = {s["notebook"] for s in steps if isinstance(s, dict) and isinstance(s.get("notebook"), str)}
    notebooks = {}
    for file in sorted(files):
        notebook = spec_path.parent / file
        if not notebook.is_file():
            raise ClientError(f"{spec_path}: a step's notebook {file!r} is not in {spec_path.parent}")
        notebooks[file] = json.loads(notebook.read_text())
    return {"spec": text, "notebooks": notebooks}


def cmd_publish(client: Client, args) -> dict:
    path = Path(args.notebook)
    workflow = path.suffix in (".yaml", ".yml")
    default = path.parent.resolve().name if workflow else path.stem  # a workflow: its folder's name
    name = args.name or re.sub(r"[^a-z0-9]+", "-", default.lower()).strip("-")
    latest = active = None
    try:
        existing = client.call("GET", f"pipelines/{args.team}/{name}/deployment")
        latest, active = existing["latest_version"], existing["active_version"]
    except ClientError as e:
        if not str(e).startswith("404"):
            raise
    if workflow:  # the spec and the notebooks it names
        source = workflow_upload(path)
    else:
        source = (
            {"server_path": args.notebook} if args.from_server else {"notebook": json.loads(path.read_text())}
        )
    body = {
        **source,
        **({"profile": args.profile} if args.profile else {}),
        **({} if workflow else {"choices": pairs(args.choice, "--choice")}),
        "message": args.message or "",
        "parent": latest or 0,  # refused if someone else published meanwhile
    }
    if latest is None:
        body.pop("parent")
    version = client.call("POST", f"pipelines/{args.team}/{name}/versions", body)
    print(f"published {args.team}/{name} v{version['number']} ({version['commit'][:10]})")
    if args.schedule or args.parameter or args.deploy:
        # Only what was given: the deployment keeps its schedule and parameters otherwise.
        deployment = {"version": version["number"]}
        if args.parameter:
            deployment["parameters"] = pairs(args.parameter, "-p")
        if args.schedule:
            deployment.update(schedule=args.schedule, timezone=args.timezone)
        client.call("PUT", f"pipelines/{args.team}/{name}/deployment", deployment)
        print(
            f"deployed v{version['number']}"
            + (f" on {args.schedule} ({args.timezone})" if args.schedule else "")
        )
    else:
        how = f"`analysis-hub pipelines deploy {args.team}/{name} --version {version['number']}` or its page"
        if active is None:
            print(f"not deployed: nothing runs until you deploy it ({how})")
        else:
            print(f"not deployed: v{active} stays active; deploy v{version['number']} with {how}")
    return version


def cmd_deploy(client: Client, args) -> dict:
    body: dict = {}
    for key in ("version", "trigger", "schedule", "concurrency", "timeout", "retries"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.schedule:
        body["timezone"] = args.timezone
    if args.parameter:
        body["parameters"] = pairs(args.parameter, "-p")
    if args.pause or args.resume:
        body["paused"] = bool(args.pause)
    if args.notify:
        body["notify_url"] = args.notify
    if args.after:
        body["after_pipeline"], body["after_on"] = args.after, args.after_on
    if args.subscribers is not None:
        body["subscribers"] = [t for t in args.subscribers.split(",") if t]
    result = client.call("PUT", f"pipelines/{args.pipeline}/deployment", body)
    print(f"{args.pipeline}: v{result['active_version']}, {result['trigger']}", result.get("schedule") or "")
    if result.get("trigger_token"):
        print(f"HTTP trigger token (shown once): {result['trigger_token']}")
    return result


def cmd_run(client: Client, args) -> dict:
    run = client.call("POST", f"pipelines/{args.pipeline}/runs", {"parameters": pairs(args.parameter, "-p")})
    print(f"run {run['id']} of {args.pipeline} v{run['version']}: {run['status']}")
    while args.wait and run["status"] not in FINISHED:
        time.sleep(1)
        run = client.call("GET", f"runs/{run['id']}")
    if args.wait:
        print(f"run {run['id']}: {run['status']}" + (f": {run['reason']}" if run["reason"] else ""))
        if run["status"] != "succeeded":
            raise SystemExit(1)
    return run


def show(rows: list[dict], columns: list[str]) -> None:
    table = [columns] + [
        [str(row.get(c, "") if row.get(c) is not None else "") for c in columns] for row in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def main(args) -> int:
    import requests

    client = Client(args.url, args.token)
    try:
        if args.action == "publish":
            cmd_publish(client, args)
        elif args.action == "versions":
            show(
                client.call("GET", f"pipelines/{args.pipeline}")["versions"],
                ["number", "published_at", "published_by", "profile", "message"],
            )
        elif args.action == "diff":
            print(
                client.call("GET", f"pipelines/{args.pipeline}/diff?a={args.a}&b={args.b}", raw=True), end=""
            )
        elif args.action == "deploy":
            cmd_deploy(client, args)
        elif args.action == "rollback":
            result = client.call("POST", f"pipelines/{args.pipeline}/rollback", {"to": args.to})
            print(f"{args.pipeline}: active version is now v{result['active_version']}")
        elif args.action == "run":
            cmd_run(client, args)
        elif args.action == "runs":
            show(
                client.call("GET", f"pipelines/{args.pipeline}/runs"),
                ["id", "status", "version", "trigger", "started_by", "started_at", "reason"],
            )
        elif args.action == "logs":
            step = f"steps/{args.step}/" if args.step else ""
            print(client.call("GET", f"runs/{args.run_id}/{step}log", raw=True), end="")
        elif args.action == "steps":
            show(
                client.call("GET", f"runs/{args.run_id}")["steps"],
                ["step", "status", "duration_s", "reason", "outputs", "decided_by"],
            )
        elif args.action == "repair":
            run = client.call("POST", f"runs/{args.run_id}/repair")
            print(f"run {run['id']} repairs run {args.run_id}: {run['status']}")
        elif args.action in ("approve", "reject"):
            path = f"runs/{args.run_id}/steps/{args.step}/{args.action}"
            decided = client.call("POST", path, {"comment": args.comment or ""})
            print(f"run {args.run_id} {args.step}: {decided['status']} by {decided['decided_by']}")
        elif args.action == "audit":
            team, _, name = (args.scope or "").partition("/")
            query = "&".join(f"{k}={v}" for k, v in (("team", team), ("pipeline", name)) if v)
            show(client.call("GET", f"audit?{query}"), ["at", "actor", "action", "team", "pipeline", "after"])
    except (ClientError, requests.ConnectionError) as e:
        print(f"analysis-hub pipelines: {e}", file=sys.stderr)
        return 2
    return 0


def add_parser(commands) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("ANALYSIS_HUB_PIPELINES_URL", DEFAULT_URL))
    common.add_argument("--token", default=os.environ.get("JUPYTERHUB_API_TOKEN", ""), help="a hub API token")
    parameters = argparse.ArgumentParser(add_help=False)
    parameters.add_argument(
        "-p", "--parameter", action="append", metavar="NAME=VALUE", help="a notebook parameter"
    )
    schedule = argparse.ArgumentParser(add_help=False)
    schedule.add_argument("--schedule", metavar="CRON", help='e.g. "0 6 * * 1-5"')
    schedule.add_argument("--timezone", default="UTC", help="time zone of the schedule, e.g. Europe/Paris")

    top = commands.add_parser("pipelines", help="publish notebooks as scheduled pipelines")
    actions = top.add_subparsers(required=True, dest="action", metavar="ACTION")
    top.set_defaults(func=main)

    publish = actions.add_parser(
        "publish",
        parents=[common, parameters, schedule],
        help="publish a new version",
        description="Publish a notebook, or a workflow (pipeline.yaml and the notebooks it names),"
        " as the pipeline's next version. Nothing is deployed without --deploy (--schedule or -p"
        " deploy it too): the pipeline runs what it ran before, or nothing if it was never deployed.",
    )
    publish.add_argument(
        "notebook",
        metavar="NOTEBOOK|pipeline.yaml",
        help="a notebook (.ipynb), or a workflow's pipeline.yaml (its folder names the pipeline)",
    )
    publish.add_argument("--team", required=True, help="the owning team (a hub group)")
    publish.add_argument(
        "--profile",
        help="the profile (image and resources) it runs with; default: the one the notebook's kernel names",
    )
    publish.add_argument("--name", help="pipeline name (default: from the notebook's file name)")
    publish.add_argument("--choice", action="append", metavar="NAME=OPTION", help="a profile choice")
    publish.add_argument("-m", "--message", help="what changed")
    publish.add_argument(
        "--deploy",
        action="store_true",
        help="make it the active version (keeping the deployment's schedule and parameters)",
    )
    publish.add_argument(
        "--from-server",
        action="store_true",
        help="NOTEBOOK is a path in your running server, not a local file",
    )

    for action, helptext in (("versions", "list versions"), ("runs", "run history")):
        parser = actions.add_parser(action, parents=[common], help=helptext)
        parser.add_argument("pipeline", metavar="TEAM/NAME")
    diff = actions.add_parser("diff", parents=[common], help="diff two versions (nbdime)")
    diff.add_argument("pipeline", metavar="TEAM/NAME")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    deploy = actions.add_parser(
        "deploy", parents=[common, parameters, schedule], help="deploy or change the deployment"
    )
    deploy.add_argument("pipeline", metavar="TEAM/NAME")
    deploy.add_argument("--version", type=int)
    deploy.add_argument("--trigger", choices=TRIGGERS, help="what starts runs (--schedule alone: cron)")
    deploy.add_argument("--concurrency", choices=["forbid", "allow"])
    deploy.add_argument("--timeout", type=int)
    deploy.add_argument("--retries", type=int)
    deploy.add_argument("--pause", action="store_true")
    deploy.add_argument("--resume", action="store_true")
    deploy.add_argument("--notify", metavar="WEBHOOK_URL")
    deploy.add_argument("--after", metavar="TEAM/NAME", help="run after each run of that pipeline ends")
    deploy.add_argument("--after-on", choices=AFTER_ON, default="success", help="which ends start a run")
    deploy.add_argument("--subscribers", metavar="TEAM,...", help="other teams that may chain after this")
    rollback = actions.add_parser("rollback", parents=[common], help="activate an earlier version")
    rollback.add_argument("pipeline", metavar="TEAM/NAME")
    rollback.add_argument("--to", type=int, required=True)
    run = actions.add_parser("run", parents=[common, parameters], help="run now")
    run.add_argument("pipeline", metavar="TEAM/NAME")
    run.add_argument("--wait", action="store_true", help="wait for the run to finish")
    logs = actions.add_parser("logs", parents=[common], help="a run's log")
    logs.add_argument("run_id", type=int)
    logs.add_argument("--step", help="a workflow step's log")
    steps = actions.add_parser("steps", parents=[common], help="a run's steps")
    steps.add_argument("run_id", type=int)
    repair = actions.add_parser("repair", parents=[common], help="re-run a failed run from its failed steps")
    repair.add_argument("run_id", type=int)
    for action in ("approve", "reject"):
        decide = actions.add_parser(action, parents=[common], help=f"{action} a run waiting at a gate")
        decide.add_argument("run_id", type=int)
        decide.add_argument("step", help="the approval step")
        decide.add_argument("-m", "--comment", help="why")
    audit = actions.add_parser("audit", parents=[common], help="the audit trail")
    audit.add_argument("scope", nargs="?", metavar="TEAM[/NAME]")
