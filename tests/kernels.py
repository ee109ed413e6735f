"""Run code in a kernel of a user's server, through the hub's proxy.

Starts a kernel over the server's REST API and speaks the Jupyter messaging
protocol over its websocket, authenticating with a token in the header (not
the URL), as JupyterLab does. Returns what the code printed to stdout or evaluated to (stderr, where the
JVM of pyspark logs, is left out).
"""

from __future__ import annotations

import asyncio
import json
import uuid

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


class KernelError(AssertionError):
    pass


def start_kernel(user, server: str = "") -> str:
    r = user.server_api("/kernels", method="POST", json={"name": "python3"}, server=server)
    r.raise_for_status()
    return r.json()["id"]


def run_code(user, code: str, kernel_id: str | None = None, timeout: float = 300, server: str = "") -> str:
    """Run `code` in a kernel of the user's default server, or of their server named `server`."""
    return run_code_streams(user, code, kernel_id, timeout, server)["stdout"]


def run_code_streams(
    user, code: str, kernel_id: str | None = None, timeout: float = 300, server: str = ""
) -> dict[str, str]:
    """Like `run_code`, with the cell's stderr too (what a notebook shows in red under the cell,
    the JVM's log included): {"stdout": ..., "stderr": ...}."""
    kernel_id = kernel_id or start_kernel(user, server)
    return asyncio.run(_execute(user, kernel_id, code, timeout, server))


async def _execute(user, kernel_id: str, code: str, timeout: float, server: str = "") -> dict[str, str]:
    prefix = f"/user/{user.name}/" + (f"{server}/" if server else "")
    ws_url = user.base_url.replace("http", "ws", 1) + f"{prefix}api/kernels/{kernel_id}/channels"
    request = HTTPRequest(ws_url, headers={"Authorization": f"token {user.token}"})
    conn = await asyncio.wait_for(websocket_connect(request), timeout=60)
    msg_id = uuid.uuid4().hex
    conn.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": user.name,
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
            }
        )
    )
    output: list[str] = []
    stderr: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                raw = await conn.read_message()
                if raw is None:
                    raise KernelError(f"kernel connection closed; output so far: {''.join(output)}")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream" and content["name"] == "stdout":
                    output.append(content["text"])
                elif kind == "stream":
                    stderr.append(content["text"])
                elif kind in ("execute_result", "display_data"):
                    output.append(content["data"].get("text/plain", ""))
                elif kind == "error":
                    raise KernelError(f"{content['ename']}: {content['evalue']}\n{''.join(output)}")
                elif kind == "status" and content["execution_state"] == "idle":
                    return {"stdout": "".join(output), "stderr": "".join(stderr)}
    finally:
        conn.close()


# Python run inside a server's kernel or a pipeline's notebook: what its container enforces
# (cgroup v1 or v2) and its process status; defines `memory`, `quota`, `period` and `status`.
CONTAINER_LIMITS = """
import json, os
from pathlib import Path
def first(*paths):
    return next((Path(p).read_text().split() for p in paths if Path(p).exists()), None)
memory = first("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
quota = first("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
period = first("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")
if not quota:  # cgroup v2
    quota, period = [first("/sys/fs/cgroup/cpu.max")[0]], [first("/sys/fs/cgroup/cpu.max")[1]]
status = dict(line.split(":\\t", 1) for line in Path("/proc/self/status").read_text().splitlines())
"""
