"""The artifact store of pipeline runs on Kubernetes: an S3-compatible bucket, through boto3 (I/O).

Contract: `ArtifactStore(client_factory)` uploads a version's notebook (`put_text`) and downloads
a run's output notebook and log (`download`, False when the pod never wrote it), at `s3://`
URLs (`workflows.artifact_urls`). boto3 is blocking: each call runs in a thread. `boto3_client`
makes the client from the settings, with the standard credential chain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse


class ArtifactStore:
    """The S3-compatible store the run pods write to (boto3, in a thread)."""

    def __init__(self, client_factory: Callable[[], object]):
        self._factory, self._client = client_factory, None

    def _s3(self):
        if self._client is None:
            self._client = self._factory()
        return self._client

    async def put_text(self, url: str, text: str) -> None:
        bucket, key = _bucket_key(url)
        await asyncio.to_thread(self._s3().put_object, Bucket=bucket, Key=key, Body=text.encode())

    def _read(self, bucket: str, key: str) -> bytes:
        return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()

    async def download(self, url: str, path: Path) -> bool:
        """Copy `url` to `path`; False when there is no such object."""
        bucket, key = _bucket_key(url)
        try:
            body = await asyncio.to_thread(self._read, bucket, key)
        except Exception as e:
            if _missing(e):
                return False
            raise
        path.write_bytes(body)
        return True


def boto3_client(endpoint_url: str | None, region: str | None) -> Callable[[], object]:
    def make():
        import boto3  # only the kubernetes backend needs it

        # Credentials: the standard chain (the chart gives the service AWS_* from the same Secret).
        return boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    return make


def _bucket_key(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URL: {url}")
    return parsed.netloc, parsed.path.lstrip("/")


def _missing(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code") if hasattr(error, "response") else None
    return code in ("NoSuchKey", "404", "NotFound")
