"""A minimal streaming OCI client over ``http.client`` (stdlib), for benchmark traffic.

Bodies stream from files in 1 MiB blocks and responses are small, so the benchmark process
never holds a blob in memory. No proxies, no auth: both registries run anonymous on
loopback. :func:`write_random_file` makes incompressible test blobs on disk.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

BLOCK = 1 << 20
UploadMode = Literal["post_digest", "post_put", "chunked"]


class RegistryHttpError(RuntimeError):
    """A registry answered a benchmark request with an unexpected status."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    wait_s: float = 0.0  # from the last byte of the request sent to the response's headers


@dataclass(frozen=True)
class Endpoint:
    """``http://HOST:PORT`` of one registry."""

    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        return cls(parts.hostname, parts.port)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 900.0,
    ) -> Reply:
        """One request on a fresh connection; the (small) response body is read whole."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout, blocksize=BLOCK)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            sent = time.perf_counter()
            response = conn.getresponse()
            wait = time.perf_counter() - sent
            data = response.read()
            headers_ = {k.lower(): v for k, v in response.getheaders()}
            return Reply(response.status, headers_, data, wait)
        finally:
            conn.close()


def _expect(reply: Reply, status: int, what: str) -> Reply:
    if reply.status != status:
        raise RegistryHttpError(f"{what}: HTTP {reply.status} {reply.body[:300]!r}")
    return reply


def _path_of(location: str) -> str:
    """A Location header (absolute URL or path) as ``/path?query``."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_digest(location: str, digest: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}digest={urllib.parse.quote(digest)}"


def start_upload(ep: Endpoint, repo: str) -> str:
    """POST an upload session; returns its location as a path."""
    reply = _expect(ep.request("POST", f"/v2/{repo}/blobs/uploads/"), 202, "start upload")
    return _path_of(reply.headers["location"])


def _file_headers(size: int) -> dict[str, str]:
    return {"Content-Type": "application/octet-stream", "Content-Length": str(size)}


def post_digest(ep: Endpoint, repo: str, digest: str, path: Path) -> Reply:
    """Single-request monolithic upload: ``POST /blobs/uploads/?digest=`` with the body."""
    with path.open("rb") as fh:
        return ep.request(
            "POST",
            _with_digest(f"/v2/{repo}/blobs/uploads/", digest),
            body=fh,
            headers=_file_headers(path.stat().st_size),
        )


def post_put(ep: Endpoint, repo: str, digest: str, path: Path) -> Reply:
    """Monolithic upload in two requests: POST (empty), then PUT ``?digest=`` with the body."""
    location = start_upload(ep, repo)
    with path.open("rb") as fh:
        reply = ep.request(
            "PUT",
            _with_digest(location, digest),
            body=fh,
            headers=_file_headers(path.stat().st_size),
        )
    return _expect(reply, 201, "PUT blob")


def _file_chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


def chunked(ep: Endpoint, repo: str, digest: str, path: Path, chunk_size: int) -> Reply:
    """POST, then PATCHes of ``chunk_size`` with Content-Range, then PUT ``?digest=``.

    Returns the final PUT's reply.
    """
    location = start_upload(ep, repo)
    offset = 0
    for chunk in _file_chunks(path, chunk_size):
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            "Content-Length": str(len(chunk)),
        }
        reply = _expect(ep.request("PATCH", location, body=chunk, headers=headers), 202, "PATCH")
        location = _path_of(reply.headers["location"])
        offset += len(chunk)
    return _expect(ep.request("PUT", _with_digest(location, digest), body=b""), 201, "final PUT")


def supports_post_digest(ep: Endpoint, repo: str) -> bool:
    """Whether the registry completes a single-request ``POST ?digest=`` upload (201)."""
    data = b"transship-bench-probe"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    reply = ep.request(
        "POST",
        _with_digest(f"/v2/{repo}/blobs/uploads/", digest),
        body=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    return reply.status == 201


def upload(
    ep: Endpoint, repo: str, digest: str, path: Path, mode: UploadMode, chunk_size: int = 64 << 20
) -> float:
    """Upload ``path`` (whose digest is ``digest``) into ``repo`` the way ``mode`` says.

    Returns the seconds from the final request's last byte sent to its 201: what the
    server spends finishing (hashing what is in flight, fsync, commit).
    """
    if mode == "post_digest":
        final = _expect(post_digest(ep, repo, digest, path), 201, "POST ?digest=")
    elif mode == "post_put":
        final = post_put(ep, repo, digest, path)
    else:
        final = chunked(ep, repo, digest, path, chunk_size)
    return final.wait_s


def put_manifest(ep: Endpoint, repo: str, ref: str, data: bytes, media_type: str) -> None:
    reply = ep.request(
        "PUT", f"/v2/{repo}/manifests/{ref}", body=data, headers={"Content-Type": media_type}
    )
    _expect(reply, 201, f"PUT manifest {repo}:{ref}")


def _keystream() -> Iterator[bytes]:
    """Incompressible bytes, fast: AES-CTR over zeros when ``cryptography`` is there."""
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:
        while True:
            yield os.urandom(BLOCK)
    encryptor = Cipher(algorithms.AES(os.urandom(32)), modes.CTR(os.urandom(16))).encryptor()
    zeros = bytes(BLOCK)
    while True:
        yield encryptor.update(zeros)


def write_random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` in 1 MiB blocks; return ``sha256:…``."""
    sha = hashlib.sha256()
    left = size
    with path.open("wb") as fh:
        for block in _keystream():
            if left <= 0:
                break
            piece = block[: min(left, BLOCK)]
            fh.write(piece)
            sha.update(piece)
            left -= len(piece)
    return "sha256:" + sha.hexdigest()
