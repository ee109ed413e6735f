"""One step's Job followed to its end: each pod's log into the run's log, the framed output kept (I/O).

Contract: `JobFollower(api, name, log_path, token, wait_seconds).follow()`
returns once the Job `name` has ended (`job_status.job_finished`) or is
gone (None); meanwhile:
- it follows the Job's pods (`jobs.JOB_LABEL`), oldest first, each in turn:
  a running pod's notebook log is followed as it is written and appended to
  `log_path` (flushed as it comes, so the run page shows it while the
  notebook runs), with a header before each retry; an ended pod's log is
  read to its end once (lines already taken are skipped, so a followed log
  that broke or went quiet is read on, never twice); a pod that can't start
  says why in the log (`job_status.pod_problem`), once per reason;
- lines of the runner's frame (`notebook_runner.FrameReader`, with the
  run's `token`) stay out of the log; `write_output(path)` writes the last
  complete frame's notebook;
- between looks it waits for the Job to change (a watch that ends after
  `wait_seconds`); a failed call (the network, 429, 5xx) is tried again
  after `RETRY_SECONDS`; other API refusals are raised.
`ordered_pods()` are the pods seen, oldest first, as last read.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from pathlib import Path

import aiohttp

from .job_status import job_finished, pod_problem, started, terminated
from .jobs import JOB_LABEL
from .jobs_api import JobsApi
from .notebook_runner import FrameReader

log = logging.getLogger(__name__)

RETRY_SECONDS = 5  # after a failed call, before the next
NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class JobFollower:
    """One Job's pods followed in turn, their logs into the run's log file (see the module)."""

    def __init__(self, api: JobsApi, name: str, log_path: Path, token: str, wait_seconds: int):
        self.api, self.name, self.log_path, self.wait_seconds = api, name, log_path, wait_seconds
        self.reader = FrameReader(token)
        self.pods: dict[str, dict] = {}  # every pod seen, as last read
        self.done: set[str] = set()  # pods whose whole log has been read
        self.lines: dict[str, int] = {}  # complete log lines taken from each pod
        self.tails: dict[str, str] = {}  # a followed log's last, unfinished line
        self.reported: dict[str, str] = {}  # the last problem written for a pod that can't start
        self._log = None

    def ordered_pods(self) -> list[dict]:
        return sorted(self.pods.values(), key=_created)

    async def follow(self) -> dict | None:
        """Follow until the Job has ended or is gone; the Job as last read (None: gone)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        while True:
            try:
                job = await self.api.get_job(self.name)
                streamed = await self._look_at_pods()
            except (*NETWORK_ERRORS, ApiException) as e:
                if isinstance(e, ApiException) and not _transient(e):
                    raise
                log.warning("following Job %s: %s; looking again in %s s", self.name, e, RETRY_SECONDS)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if job is None or job_finished(job):
                return job
            if streamed:
                continue  # a log ended: its container did, or the stream went quiet; look again
            await self._wait(job)

    async def _wait(self, job: dict) -> None:
        """Until the Job changes (a pod started or ended, a condition) or `wait_seconds` pass."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            await self.api.next_job_change(self.name, job["metadata"]["resourceVersion"], self.wait_seconds)
        except (*NETWORK_ERRORS, ApiException) as e:
            if isinstance(e, ApiException) and not (_transient(e) or e.status == 410):
                raise  # 410: the version read is too old to watch from; the Job is read again
            log.warning("watching Job %s: %s", self.name, e)
            await asyncio.sleep(RETRY_SECONDS)

    async def _look_at_pods(self) -> bool:
        """Read what each pod has to give; True when a running pod's log was followed."""
        for pod in sorted(await self.api.list_pods(f"{JOB_LABEL}={self.name}"), key=_created):
            name = pod["metadata"]["name"]
            self.pods[name] = pod
            if name in self.done:
                continue
            if terminated(pod):
                await self._read(pod, follow=False)
            elif started(pod):
                await self._read(pod, follow=True)
                return True
            else:
                self._report(pod)
        return False

    def _report(self, pod: dict) -> None:
        """Say in the log why a pod hasn't started, once per reason."""
        name, problem = pod["metadata"]["name"], pod_problem(pod)
        if problem and self.reported.get(name) != problem:
            self.reported[name] = problem
            self._write(f"pod {name}: {problem}\n")

    async def _read(self, pod: dict, follow: bool) -> None:
        """The pod's log from where this follower left it: followed while the container runs, or
        the rest at once when it has ended (then the pod is done)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        name = pod["metadata"]["name"]
        if name not in self.lines:
            self.lines[name] = 0
            self._header(pod)
        skip, seen, tail = self.lines[name], 0, ""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        started_at = time.monotonic()
        try:
            async for chunk in self.api.pod_log(name, follow):
                *complete, tail = (tail + decoder.decode(chunk)).split("\n")
                for line in complete:
                    seen += 1
                    if seen > skip:
                        self._line(line)
                        self.lines[name] = seen
                self._flush()
        except ApiException as e:
            if e.status == 404 or (e.status == 400 and not follow):
                # The pod is gone, or ended without a log to give: what was read is all there is.
                self._finish(name, self.tails.pop(name, ""))
                return
            if e.status != 400:
                raise
            await asyncio.sleep(RETRY_SECONDS)  # the container isn't running yet: look again later
            return
        except TimeoutError:
            if not follow:
                raise
            self.tails[name] = tail  # a quiet log: read on from the last complete line
            return
        if not follow:
            self._finish(name, tail)
            return
        self.tails[name] = tail
        if seen <= skip and time.monotonic() - started_at < 1:
            # The log ended at once with nothing new while the container runs: no busy loop.
            await asyncio.sleep(RETRY_SECONDS)

    def _finish(self, name: str, tail: str) -> None:
        if tail:
            self._line(tail)
        self._flush()
        self.done.add(name)

    def _header(self, pod: dict) -> None:
        attempt = sum(1 for p in self.pods.values() if p["metadata"]["name"] in self.lines)
        if attempt > 1:
            self._write(f"----- attempt {attempt}: pod {pod['metadata']['name']} -----\n")

    def _line(self, line: str) -> None:
        if not self.reader.feed(line):
            self._write(line.rstrip("\r") + "\n", flush=False)

    def _write(self, text: str, flush: bool = True) -> None:
        if self._log is None:
            self._log = self.log_path.open("a", encoding="utf-8")
        self._log.write(text)
        if flush:
            self._flush()

    def _flush(self) -> None:
        if self._log is not None:
            self._log.flush()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def write_output(self, path: Path) -> bool:
        """The framed output notebook to `path`; False when no attempt framed one."""
        if self.reader.data is None:
            return False
        path.write_bytes(self.reader.data)
        return True


def _transient(error) -> bool:
    """An API answer worth asking again: too many requests, or the server's own trouble."""
    return error.status == 429 or (error.status or 0) >= 500


def _created(pod: dict) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), meta.get("name") or ""
