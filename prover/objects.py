"""An S3-compatible object store, the artifact store's copy shared by every host.

boto3 is the reference S3 client: its TransferManager uploads and downloads large files
in parts from and to disk (never whole in memory, parts retried on their own), it reads
the usual ``AWS_*`` variables, and it speaks to AWS, MinIO, SeaweedFS or Ceph alike.
Every call's failure to reach the store is raised as ``StoreUnavailableError`` (transient:
the queue retries the job), so no caller handles botocore's own errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from prover.errors import StoreUnavailableError

_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class Blob:
    """A small object read whole: its bytes, the ETag a conditional write names, and its
    user metadata."""

    data: bytes
    etag: str
    metadata: dict[str, str]


@contextmanager
def _calls(what: str) -> Iterator[None]:
    """Raise a store that does not answer as ``StoreUnavailableError``, naming the call."""
    try:
        yield
    except ClientError as exc:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if status >= 500:
            raise StoreUnavailableError(f"object store failed to {what}: {exc}") from exc
        raise
    except BotoCoreError as exc:
        raise StoreUnavailableError(f"object store unreachable ({what}): {exc}") from exc


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class ObjectStore:
    """``s3://bucket/prefix``; the endpoint and credentials come from ``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_REGION``."""

    def __init__(self, url: str, part_bytes: int = 8 * 1024 * 1024) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"PROVER_STORE_URL must look like s3://bucket/prefix, not {url!r}")
        self.url = url
        self.part_bytes = part_bytes
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        config = Config(
            retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60
        )
        self.client = boto3.client("s3", region_name=os.environ.get("AWS_REGION"), config=config)
        self.transfer = TransferConfig(
            multipart_threshold=part_bytes, multipart_chunksize=part_bytes, max_concurrency=4
        )

    def __reduce__(self) -> tuple[type[ObjectStore], tuple[str, int]]:
        """Pickled as its URL (a store goes to sandboxed children; a client cannot)."""
        return (ObjectStore, (self.url, self.part_bytes))

    def key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def upload(self, path: Path, key: str) -> None:
        """Stream a file up (in parts past the part size)."""
        with _calls(f"upload {key}"):
            self.client.upload_file(str(path), self.bucket, key, Config=self.transfer)

    def download(self, key: str, path: Path) -> None:
        """Stream an object down to a file (in ranged parts past the part size)."""
        with _calls(f"download {key}"):
            self.client.download_file(self.bucket, key, str(path), Config=self.transfer)

    def read(self, key: str) -> Blob | None:
        """A small object whole, or None when there is none."""
        with _calls(f"read {key}"):
            try:
                got = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    return None
                raise
            return Blob(got["Body"].read(), got["ETag"], dict(got.get("Metadata", {})))

    def write(
        self, key: str, data: bytes, etag: str | None, metadata: dict[str, str] | None = None
    ) -> bool:
        """Write a small object only if it is unchanged since read as ``etag`` (If-Match), or
        only if there is none (If-None-Match: *) when ``etag`` is None; False if another
        writer came first."""
        condition: dict[str, Any] = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        with _calls(f"write {key}"):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=data, Metadata=metadata or {}, **condition
                )
            except ClientError as exc:
                if _error_code(exc) in _PRECONDITION:
                    return False
                raise
        return True

    def exists(self, key: str) -> bool:
        with _calls(f"look up {key}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING:
                    return False
                raise
        return True

    def delete_under(self, prefix: str) -> None:
        """Remove every object under ``prefix/`` (an abandoned upload)."""
        with _calls(f"delete {prefix}"):
            for key in self._keys(f"{prefix}/", None):
                self.client.delete_object(Bucket=self.bucket, Key=key)

    def children(self, prefix: str, starting: str = "") -> list[str]:
        """Names of the "folders" directly under ``prefix/`` that start with ``starting``."""
        with _calls(f"list {prefix}"):
            return [
                p.rstrip("/").rsplit("/", 1)[-1] for p in self._keys(f"{prefix}/{starting}", "/")
            ]

    def _keys(self, prefix: str, delimiter: str | None) -> Iterator[str]:
        """Object keys under ``prefix`` or, with a delimiter, the common prefixes."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra: dict[str, Any] = {"Delimiter": delimiter} if delimiter else {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **extra):
            if delimiter:
                yield from (p["Prefix"] for p in page.get("CommonPrefixes", []))
            else:
                yield from (o["Key"] for o in page.get("Contents", []))
