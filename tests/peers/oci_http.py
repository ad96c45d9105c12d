"""A small, synchronous OCI distribution client for tests (``requests``, no env proxies).

:class:`RegistryClient` speaks just enough of the distribution API to push and read back
images byte-for-byte, against any registry: ours, ``docker-registry``, or a fault proxy.

Authentication: on first use it asks ``GET /v2/`` for the challenge. ``Basic`` → it sends
the given credentials on every request. ``Bearer realm=…,service=…`` → before each request
it fetches (and caches per scope set) a token from the realm, sending the credentials as
Basic when it has them, for ``repository:REPO:<actions>`` plus any scope the registry
named in a later challenge. A 401 on a request whose body can be replayed is retried once
with a fresh token. Tokens for a realm are only ever fetched from the realm the registry
itself named.

Blob uploads (``mode``): ``post_put`` (POST, then PUT ?digest= with the whole body),
``monolithic`` (POST ?digest= with the body; falls back to PUT if the registry answers 202),
``chunked`` (POST, PATCHes of ``chunk_size`` with Content-Range, then PUT ?digest=).
Bodies stream from files; no upload holds a whole large blob in memory.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_MEDIA_TYPES: tuple[str, ...] = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)

UploadMode = Literal["post_put", "monolithic", "chunked"]
Body = bytes | Path


class RegistryError(RuntimeError):
    """A registry answered with an unexpected status; carries the response for assertions."""

    def __init__(self, message: str, response: requests.Response) -> None:
        super().__init__(f"{message}: HTTP {response.status_code} {response.text[:2000]}")
        self.response = response
        self.status = response.status_code


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as served: exact bytes, the Content-Type, and Docker-Content-Digest (if sent)."""

    data: bytes
    media_type: str
    digest_header: str | None


_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Parse ``Scheme k="v",k2=v2`` into ``("scheme", {k: v})`` (scheme lower-cased)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def basic_auth_header(username: str, password: str) -> str:
    """The value of an HTTP Basic ``Authorization`` header."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class RegistryClient:
    """A client of one registry at ``base_url`` (``http://127.0.0.1:PORT``)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # never an environment proxy for loopback peers
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[frozenset[str], str] = {}

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        repo: str | None = None,
        actions: Iterable[str] = ("pull",),
        scopes: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        body: Body | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one authorised request; ``repo``/``actions`` (plus ``scopes``) choose the
        token scope."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        wanted = set(scopes)
        if repo:
            wanted.add(f"repository:{repo}:{','.join(actions)}")
        for attempt in range(2):
            hdrs = dict(headers or {})
            hdrs.update(self._auth_headers(wanted, refresh=attempt > 0))
            if isinstance(body, Path):
                with body.open("rb") as fh:
                    response = self.session.request(
                        method,
                        url,
                        headers=hdrs,
                        params=params,
                        data=fh,
                        timeout=self.timeout,
                        stream=stream,
                        allow_redirects=False,
                    )
            else:
                response = self.session.request(
                    method,
                    url,
                    headers=hdrs,
                    params=params,
                    data=body,
                    timeout=self.timeout,
                    stream=stream,
                    allow_redirects=False,
                )
            if response.status_code != 401 or attempt > 0:
                return response
            challenge = response.headers.get("WWW-Authenticate")
            if not challenge:
                return response
            self._challenge = parse_challenge(challenge)
            scope = self._challenge[1].get("scope")
            if scope:
                wanted |= set(scope.split(" "))
            response.close()
        raise AssertionError("unreachable")

    def _auth_headers(self, scopes: set[str], *, refresh: bool) -> dict[str, str]:
        if self._challenge is None:
            ping = self.session.get(f"{self.base_url}/v2/", timeout=self.timeout)
            header = ping.headers.get("WWW-Authenticate")
            self._challenge = (
                parse_challenge(header) if ping.status_code == 401 and header else ("", {})
            )
        scheme, params = self._challenge
        if scheme == "basic" and self.auth is not None:
            return {"Authorization": basic_auth_header(*self.auth)}
        if scheme == "bearer":
            key = frozenset(scopes)
            if refresh or key not in self._tokens:
                self._tokens[key] = self._fetch_token(params, sorted(key))
            return {"Authorization": f"Bearer {self._tokens[key]}"}
        return {}

    def _fetch_token(self, challenge: dict[str, str], scopes: list[str]) -> str:
        query: list[tuple[str, str]] = []
        if "service" in challenge:
            query.append(("service", challenge["service"]))
        query.extend(("scope", s) for s in scopes)
        response = self.session.get(
            challenge["realm"], params=query, auth=self.auth, timeout=self.timeout
        )
        if response.status_code != 200:
            raise RegistryError("token request failed", response)
        payload: dict[str, Any] = response.json()
        token = payload.get("token") or payload.get("access_token")
        if not isinstance(token, str):
            raise RegistryError("token response without token", response)
        return token

    # -- blobs -----------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        """HEAD the blob: True on 200, False on 404, RegistryError otherwise."""
        response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo)
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise RegistryError(f"HEAD blob {digest}", response)

    def get_blob(self, repo: str, digest: str) -> bytes:
        """GET a (small) blob's bytes, following the registry's redirect if any."""
        response = self.request("GET", f"/v2/{repo}/blobs/{digest}", repo=repo)
        if response.status_code in (301, 302, 303, 307, 308):
            response = self.session.get(response.headers["Location"], timeout=self.timeout)
        if response.status_code != 200:
            raise RegistryError(f"GET blob {digest}", response)
        return response.content

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repository mount; True when mounted (201), False when the registry started
        an upload instead."""
        response = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            repo=repo,
            actions=("pull", "push"),
            params={"mount": digest, "from": from_repo},
            scopes=(f"repository:{from_repo}:pull",),
        )
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            return False
        raise RegistryError(f"mount {digest} from {from_repo}", response)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        body: Body,
        *,
        mode: UploadMode = "post_put",
        chunk_size: int = 5 << 20,
    ) -> None:
        """Upload one blob (bytes or a file) under ``digest``; RegistryError unless it ends
        in 201."""
        push = ("pull", "push")
        uploads = f"/v2/{repo}/blobs/uploads/"
        if mode == "monolithic":
            response = self.request(
                "POST",
                uploads,
                repo=repo,
                actions=push,
                params={"digest": digest},
                headers={"Content-Type": "application/octet-stream"},
                body=body,
            )
            if response.status_code == 201:
                return
            if response.status_code != 202:
                raise RegistryError(f"monolithic POST {digest}", response)
            location = self._location(response)
        else:
            response = self.request("POST", uploads, repo=repo, actions=push)
            if response.status_code != 202:
                raise RegistryError(f"start upload {digest}", response)
            location = self._location(response)
        if mode == "chunked":
            offset = 0
            for chunk in _chunks(body, chunk_size):
                response = self.request(
                    "PATCH",
                    location,
                    repo=repo,
                    actions=push,
                    body=chunk,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        "Content-Length": str(len(chunk)),
                    },
                )
                if response.status_code != 202:
                    raise RegistryError(f"PATCH {digest} at {offset}", response)
                location = self._location(response)
                offset += len(chunk)
            response = self.request(
                "PUT",
                _with_query(location, digest=digest),
                repo=repo,
                actions=push,
                body=b"",
            )
        else:
            response = self.request(
                "PUT",
                _with_query(location, digest=digest),
                repo=repo,
                actions=push,
                headers={"Content-Type": "application/octet-stream"},
                body=body,
            )
        if response.status_code != 201:
            raise RegistryError(f"PUT blob {digest}", response)

    # -- manifests and tags ----------------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str | None:
        """PUT manifest bytes as-is; return the Docker-Content-Digest the registry answered."""
        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo=repo,
            actions=("pull", "push"),
            headers={"Content-Type": media_type},
            body=data,
        )
        if response.status_code != 201:
            raise RegistryError(f"PUT manifest {repo}:{reference}", response)
        return response.headers.get("Docker-Content-Digest")

    def get_manifest(
        self, repo: str, reference: str, accept: Iterable[str] = MANIFEST_MEDIA_TYPES
    ) -> FetchedManifest:
        """GET a manifest by tag or digest with every manifest type accepted; exact bytes back."""
        response = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            repo=repo,
            headers={"Accept": ", ".join(accept)},
        )
        if response.status_code != 200:
            raise RegistryError(f"GET manifest {repo}:{reference}", response)
        return FetchedManifest(
            data=response.content,
            media_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
            digest_header=response.headers.get("Docker-Content-Digest"),
        )

    def delete_manifest(self, repo: str, digest: str) -> None:
        """DELETE a manifest by digest (202 expected)."""
        response = self.request(
            "DELETE", f"/v2/{repo}/manifests/{digest}", repo=repo, actions=("delete",)
        )
        if response.status_code != 202:
            raise RegistryError(f"DELETE manifest {repo}@{digest}", response)

    def list_tags(self, repo: str) -> list[str]:
        """``GET /v2/REPO/tags/list`` (first page only)."""
        response = self.request("GET", f"/v2/{repo}/tags/list", repo=repo)
        if response.status_code != 200:
            raise RegistryError(f"tags of {repo}", response)
        tags: list[str] = response.json().get("tags") or []
        return tags

    def referrers(self, repo: str, digest: str, artifact_type: str | None = None) -> dict[str, Any]:
        """``GET /v2/REPO/referrers/DIGEST[?artifactType=…]`` → the index as a dict."""
        params = {"artifactType": artifact_type} if artifact_type else None
        response = self.request("GET", f"/v2/{repo}/referrers/{digest}", repo=repo, params=params)
        if response.status_code != 200:
            raise RegistryError(f"referrers of {digest}", response)
        result: dict[str, Any] = response.json()
        return result

    # -- helpers ---------------------------------------------------------------------------

    def _location(self, response: requests.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError("upload response without Location", response)
        return urllib.parse.urljoin(self.base_url + "/", location)


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.extend(params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _chunks(body: Body, size: int) -> Iterator[bytes]:
    if isinstance(body, bytes):
        for start in range(0, len(body), size):
            yield body[start : start + size]
        return
    with body.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk
