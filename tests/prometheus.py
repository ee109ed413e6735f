"""A real Prometheus (Debian's `prometheus` package) on loopback, for the metrics tests.

`RunningPrometheus(workdir, jobs)` writes a config scraping each job (name ->
(URL of the metrics endpoint, bearer token)) every second, starts
`prometheus` on a free loopback port with its data in `workdir`, and waits
until it answers. `query(promql)` runs an instant query over the HTTP API
and returns the result vector; `wait_for(promql, ok)` retries until `ok`
accepts the result. `stop()` ends the process. Installed by
scripts/install-system-deps.sh when missing.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import requests
import yaml
from harness import free_port


def scrape_config(jobs: dict[str, tuple[str, str]]) -> dict:
    configs = []
    for name, (url, token) in jobs.items():
        parsed = urlparse(url)
        configs.append(
            {
                "job_name": name,
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "metrics_path": parsed.path,
                "scheme": parsed.scheme,
                "authorization": {"type": "Bearer", "credentials": token},
                "static_configs": [{"targets": [parsed.netloc]}],
            }
        )
    return {"global": {"evaluation_interval": "1s"}, "scrape_configs": configs}


class RunningPrometheus:
    def __init__(self, workdir: Path, jobs: dict[str, tuple[str, str]]):
        binary = shutil.which("prometheus")
        if not binary:
            raise AssertionError("prometheus is not installed; run scripts/install-system-deps.sh")
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(jobs)))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "prometheus.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"prometheus did not start:\n{self.log_path.read_text()[-3000:]}")

    def query(self, promql: str) -> list[dict]:
        r = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The single value of a query that returns one series (None when it returns none)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, ok, within: float = 30):
        """Retry `promql` until `ok(value)`; the last value is in the error otherwise."""
        deadline = time.monotonic() + within
        while True:
            value = self.value(promql)
            if value is not None and ok(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql} = {value} after {within} s")
            time.sleep(1)

    def names(self) -> set[str]:
        r = requests.get(f"{self.url}/api/v1/label/__name__/values", timeout=10)
        return set(r.json()["data"])

    def targets(self) -> dict[str, str]:
        r = requests.get(f"{self.url}/api/v1/targets", timeout=10)
        return {t["labels"]["job"]: t["health"] for t in r.json()["data"]["activeTargets"]}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
