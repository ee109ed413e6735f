"""STAND-IN spawner for the culling-at-scale benchmark only: it runs no server at all.

This is deliberately not a real spawner, and the benchmark's report says so.
Culling 1,000 idle servers is a question about the hub and the culler (the
REST API, the database, the proxy's routes), not about the servers, and a
machine with 2 cores cannot run 1,100 JupyterLab servers. So:

- `start()` returns the address of one shared HTTP responder (this file
  run as `python standin_spawner.py PORT`, an empty 200 to any request),
  which answers the hub's "is the server up?" checks for every user;
  nothing is started per server;
- `poll()` says "running" while the spawner state says so, which is how a
  benchmark database records 1,000 servers as running before the hub starts;
- `stop()` only clears that flag.

Everything else (JupyterHub, configurable-http-proxy, its routes, the
database, jupyterhub-idle-culler and its REST calls) is real. Loaded by the
hub process through its PYTHONPATH; it imports nothing from analysis_hub.
"""

from __future__ import annotations

from jupyterhub.spawner import Spawner
from traitlets import Integer, Unicode

STATE_KEY = "standin_running"


class StandInSpawner(Spawner):
    responder_ip = Unicode("127.0.0.1", config=True, help="the shared HTTP responder's address")
    responder_port = Integer(0, config=True, help="the shared HTTP responder's port")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.running = False

    def load_state(self, state):
        super().load_state(state)
        self.running = bool(state.get(STATE_KEY))

    def get_state(self):
        state = super().get_state()
        if self.running:
            state[STATE_KEY] = True
        return state

    def clear_state(self):
        super().clear_state()
        self.running = False

    async def start(self):
        self.running = True
        return (self.responder_ip, self.responder_port)

    async def poll(self):
        return None if self.running else 0

    async def stop(self, now=False):
        self.running = False


async def _respond(reader, writer) -> None:
    """Answer any request with an empty 200 and close: enough for the hub's "is it up?" check."""
    try:
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
    finally:
        writer.close()


async def serve_responder(port: int) -> None:
    import asyncio

    server = await asyncio.start_server(_respond, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":  # python standin_spawner.py PORT: the shared responder
    import asyncio
    import sys

    asyncio.run(serve_responder(int(sys.argv[1])))
