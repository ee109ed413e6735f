"""Webhook notifications for finished runs, in a Slack-compatible payload.

Contract: `run_message(...)` (a run ended) and `approval_message(...)` (a gate
waits for its approvers) are pure and return the JSON body (Slack's
`text` plus `blocks`; Mattermost, Teams workflows and most chat tools accept
it). It links to the run's output notebook, at papermill's error anchor
when a cell failed. `send(url, payload)` posts it and never raises: a dead
webhook must not fail the run, it is logged instead.
"""

from __future__ import annotations

import json
import logging

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

log = logging.getLogger(__name__)
ICONS = {
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "timed_out": ":hourglass:",
    "cancelled": ":no_entry_sign:",
}


def run_message(team: str, pipeline: str, run: dict, run_url: str) -> dict:
    status = run["status"]
    link = run_url + ("#papermill-error-cell" if run.get("error_cell") is not None else "")
    headline = (
        f"{ICONS.get(status, '')} {team}/{pipeline} run {run['id']} (v{run['version']}) {status}".strip()
    )
    details = run.get("reason") or ""
    text = (
        f"{headline}: {details} <{link}|output notebook>"
        if details
        else f"{headline} <{link}|output notebook>"
    )
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"trigger: {run['trigger']} · started by {run['started_by']}"}
                ],
            },
        ],
        "analysis_hub": {"team": team, "pipeline": pipeline, "run": run, "url": link},
    }


async def send(url: str, payload: dict) -> bool:
    try:
        await AsyncHTTPClient().fetch(
            url,
            method="POST",
            body=json.dumps(payload, default=str),
            headers={"Content-Type": "application/json"},
            request_timeout=10,
        )
        return True
    except (HTTPClientError, OSError) as e:
        log.warning("webhook %s failed: %s", url, e)
        return False


def approval_message(team: str, pipeline: str, run_id: int, step: str, approvers: str, url: str) -> dict:
    """A gate waits: the approvers are asked to decide on the run's page."""
    text = (
        f":raised_hand: {team}/{pipeline} run {run_id} waits for approval at {step}:"
        f" a member of {approvers} approves or rejects it <{url}|on its page>"
    )
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "analysis_hub": {"team": team, "pipeline": pipeline, "run": run_id, "step": step, "url": url},
    }
