"""The JupyterHub application `analysis-hub up` runs: JupyterHub's, with a prompt, complete stop (I/O).

Contract: `AnalysisHub` is JupyterHub's application with one change, its
`cleanup`, which JupyterHub runs on SIGTERM and SIGINT (once, however many
signals arrive). Within a few seconds
(SERVICE_GRACE_S + PROXY_GRACE_S and the bookkeeping, under 5 s):
- the periodic checks stop first, so that no health check probes a service
  that is being stopped (JupyterHub stops them only on its own `stop()`
  path, not on a signal, hence the traceback from `check_services_health`);
- every managed service (the idle culler, the pipelines service) gets
  SIGTERM, to its process group, all at once, and SIGKILL after
  SERVICE_GRACE_S. JupyterHub alone stops them one after the other with
  SIGINT and waits 30 s for each before SIGTERM; a hub started as a shell's
  background job passes on an ignored SIGINT, and the stop took 47-67 s;
- JupyterHub then does the rest of its cleanup (database, pid files) and
  stops the proxy, which is waited for (SIGKILL after PROXY_GRACE_S), so
  that nothing the hub started outlives `up`, except
- users' servers, which keep running on purpose (`cleanup_servers` is
  off): the next `analysis-hub up` finds them again. `servers_left_running`
  counts them for `up`'s closing message.
"""

from __future__ import annotations

import asyncio

from jupyterhub.app import JupyterHub

from . import processes

SERVICE_GRACE_S = 2.5
PROXY_GRACE_S = 1.0


class AnalysisHub(JupyterHub):
    servers_left_running = 0
    _cleanup_task: asyncio.Future | None = None

    async def cleanup(self):
        # A second signal (Ctrl-C twice) waits for the stop under way instead of starting
        # another beside it; JupyterHub then cancels every other task, so the stop is
        # shielded from that.
        if self._cleanup_task is None:
            self._cleanup_task = asyncio.ensure_future(self._stop_everything())
        await asyncio.shield(self._cleanup_task)

    async def _stop_everything(self):
        self.servers_left_running = sum(
            1 for user in self.users.values() for spawner in user.spawners.values() if spawner.active
        )
        # Private to JupyterHub, but the same loop its own `stop()` runs.
        for callback in self._periodic_callbacks.values():
            callback.stop()
        services = [s for s in self._service_map.values() if s.managed and getattr(s, "proc", None)]
        for service in services:
            service.spawner.stop_polling()  # else JupyterHub restarts a service it sees exit
        if services:
            names = ", ".join(s.name for s in services)
            self.log.info("Stopping services %s (SIGTERM, SIGKILL after %s s)", names, SERVICE_GRACE_S)
            pids = [s.proc.pid for s in services]
            killed = await asyncio.to_thread(processes.stop_groups, pids, SERVICE_GRACE_S)
            for service in services:
                if service.proc.pid in killed:
                    self.log.warning(
                        "Service %s ignored SIGTERM for %s s: killed", service.name, SERVICE_GRACE_S
                    )
        await super().cleanup()
        proxy = getattr(self.proxy, "proxy_process", None)
        if self.proxy.should_start and proxy is not None:
            if await asyncio.to_thread(processes.stop_groups, [proxy.pid], PROXY_GRACE_S):
                self.log.warning("The proxy ignored SIGTERM for %s s: killed", PROXY_GRACE_S)
            proxy.poll()  # reap it
