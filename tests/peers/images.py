"""Deterministic test images without Docker: OCI image layouts, indexes, foreign layers.

Everything here is a pure function of its arguments: the same call writes the same bytes
and yields the same digests, on any machine (tar entries have fixed mtimes, owners and
modes; gzip streams have mtime 0 and no file name; JSON is written with fixed formatting).

Layer content is incompressible pseudo-random data from a seeded generator, streamed to
disk in 1 MiB blocks, so layers may be as large as a test needs without holding them in
memory. Layers whose data is over :data:`STORED_GZIP_ABOVE` bytes are gzip "stored"
(level 0): still valid gzip, ~10x faster to make, and the same size either way.

What a test gets back (:class:`BuiltImage`, :class:`BuiltIndex`) carries every digest:
the index, each child manifest, each config and layer, and the foreign layers that are
described but have no blob. Manifest JSON is deliberately *not* Python's default
formatting (OCI: compact; Docker: 3-space indent, as Docker writes it), so a server that
re-serialises JSON changes the digest and fails byte-identity assertions.

- (a) :func:`build_image`: one platform; OCI or Docker schema 2 media types.
- (b) :func:`build_index`: a multi-arch OCI index (default linux/amd64, linux/arm64,
  linux/arm/v7).
- (c) :func:`build_docker_list_with_foreign_layer`: a Docker manifest list with a
  windows/amd64 entry whose base layer is foreign (``urls``, no blob) and a linux/amd64 entry.
- :func:`build_artifact`: an OCI artifact manifest with ``artifactType`` and ``subject``.
- :func:`push_layout_http`: push a root (and everything under it) over the OCI HTTP API,
  byte-for-byte, skipping foreign layers; skopeo cannot read Docker-typed roots of a layout.

Each built root is also recorded in the layout's ``index.json`` under its ``tag`` (annotation
``org.opencontainers.image.ref.name``), so ``skopeo copy oci:DIR:TAG`` works for OCI roots.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .oci_http import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    UploadMode,
)

__all__ = [
    "DEFAULT_PLATFORMS",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER_GZIP",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "OCI_NONDISTRIBUTABLE_LAYER",
    "BuiltImage",
    "BuiltIndex",
    "BuiltLayer",
    "Descriptor",
    "OciLayout",
    "Platform",
    "PushResult",
    "build_artifact",
    "build_docker_list_with_foreign_layer",
    "build_image",
    "build_index",
    "foreign_layer",
    "push_layout_http",
    "sha256_digest",
    "write_layer",
]

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_NONDISTRIBUTABLE_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
FOREIGN_LAYER_TYPES = frozenset({DOCKER_FOREIGN_LAYER, OCI_NONDISTRIBUTABLE_LAYER})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
REF_NAME = "org.opencontainers.image.ref.name"

EMPTY_JSON = b"{}"
STORED_GZIP_ABOVE = 4 << 20
_BLOCK = 1 << 20
_FIXED_MTIME = 1_700_000_000
DEFAULT_PLATFORMS: tuple[str, ...] = ("linux/amd64", "linux/arm64", "linux/arm/v7")
WINDOWS_OS_VERSION = "10.0.17763.5576"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Platform:
    """An image platform. ``Platform.parse("linux/arm/v7")``; ``str()`` gives it back."""

    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``."""
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"bad platform {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def to_json(self) -> dict[str, str]:
        """The descriptor ``platform`` object."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The descriptor as JSON (keys in the order registries and tools usually write them)."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Descriptor:
        """Parse a descriptor object (unknown fields ignored)."""
        plat = obj.get("platform")
        platform = None
        if isinstance(plat, Mapping):
            platform = Platform(
                plat["os"], plat["architecture"], plat.get("variant"), plat.get("os.version")
            )
        return cls(
            media_type=obj["mediaType"],
            digest=obj["digest"],
            size=int(obj["size"]),
            platform=platform,
            urls=tuple(obj.get("urls") or ()),
            annotations=obj.get("annotations"),
            artifact_type=obj.get("artifactType"),
        )

    @property
    def is_foreign(self) -> bool:
        """A non-distributable layer: has ``urls`` or a foreign/non-distributable media type."""
        return bool(self.urls) or self.media_type in FOREIGN_LAYER_TYPES


@dataclass(frozen=True)
class BuiltLayer:
    """A layer: its descriptor, the uncompressed tar's digest (diff_id) and size."""

    descriptor: Descriptor
    diff_id: str
    uncompressed_size: int

    @property
    def digest(self) -> str:
        """The layer blob's digest."""
        return self.descriptor.digest


@dataclass(frozen=True)
class BuiltImage:
    """One image manifest written to a layout, and everything it references."""

    layout: OciLayout
    descriptor: Descriptor
    manifest_bytes: bytes
    config: Descriptor
    layers: tuple[BuiltLayer, ...]
    platform: Platform | None
    subject: Descriptor | None = None

    @property
    def digest(self) -> str:
        """The manifest digest."""
        return self.descriptor.digest

    @property
    def media_type(self) -> str:
        """The manifest media type."""
        return self.descriptor.media_type

    @property
    def manifest_digests(self) -> tuple[str, ...]:
        """Just this manifest's digest (same shape as :attr:`BuiltIndex.manifest_digests`)."""
        return (self.digest,)

    @property
    def blob_digests(self) -> tuple[str, ...]:
        """Config and the layers that have blobs (foreign layers excluded), in manifest order."""
        return (
            self.config.digest,
            *(layer.digest for layer in self.layers if not layer.descriptor.is_foreign),
        )

    @property
    def foreign_layers(self) -> tuple[Descriptor, ...]:
        """Layers described with ``urls`` and no blob."""
        return tuple(layer.descriptor for layer in self.layers if layer.descriptor.is_foreign)

    @property
    def blob_bytes(self) -> int:
        """Total size of :attr:`blob_digests`."""
        return self.config.size + sum(
            layer.descriptor.size for layer in self.layers if not layer.descriptor.is_foreign
        )


@dataclass(frozen=True)
class BuiltIndex:
    """An index / manifest list written to a layout, and its children."""

    layout: OciLayout
    descriptor: Descriptor
    index_bytes: bytes
    children: tuple[BuiltImage, ...]

    @property
    def digest(self) -> str:
        """The index digest."""
        return self.descriptor.digest

    @property
    def media_type(self) -> str:
        """The index media type."""
        return self.descriptor.media_type

    @property
    def child_digests(self) -> tuple[str, ...]:
        """Child manifest digests, in index order."""
        return tuple(c.digest for c in self.children)

    @property
    def manifest_digests(self) -> tuple[str, ...]:
        """The index digest, then each child's."""
        return (self.digest, *self.child_digests)

    @property
    def blob_digests(self) -> tuple[str, ...]:
        """Every distinct blob digest of every child, first occurrence order."""
        return tuple(dict.fromkeys(d for c in self.children for d in c.blob_digests))

    @property
    def foreign_layers(self) -> tuple[Descriptor, ...]:
        """Every foreign layer of every child."""
        return tuple(f for c in self.children for f in c.foreign_layers)

    @property
    def blob_bytes(self) -> int:
        """Total size of the distinct blobs."""
        sizes = {
            d.digest: d.size
            for c in self.children
            for d in (c.config, *(layer.descriptor for layer in c.layers))
        }
        return sum(sizes[d] for d in self.blob_digests)

    def child(self, platform: str | Platform) -> BuiltImage:
        """The child built for ``platform`` (``"linux/arm/v7"`` or a Platform)."""
        want = str(platform)
        for c in self.children:
            if c.platform is not None and str(c.platform) == want:
                return c
        raise KeyError(want)


# --------------------------------------------------------------------------------------------
# The layout


class OciLayout:
    """An OCI image layout directory (created when missing): ``oci-layout``, ``index.json``,
    ``blobs/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = root / "oci-layout"
        if not marker.exists():
            marker.write_text('{"imageLayoutVersion":"1.0.0"}')
        if not (root / "index.json").exists():
            self._write_index([])

    def blob_path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        algorithm, _, hexpart = digest.partition(":")
        return self.root / "blobs" / algorithm / hexpart

    def has_blob(self, digest: str) -> bool:
        """True when the blob is present."""
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        """A blob's bytes (use :meth:`blob_path` for large ones)."""
        return self.blob_path(digest).read_bytes()

    def write_blob(self, data: bytes, media_type: str, **fields: Any) -> Descriptor:
        """Store ``data`` and return its descriptor (extra ``fields`` go to the Descriptor)."""
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return Descriptor(media_type, digest, len(data), **fields)

    def write_json(
        self, obj: Mapping[str, Any], media_type: str, *, indent: int | None = None, **fields: Any
    ) -> tuple[Descriptor, bytes]:
        """Serialise (compact, or with ``indent``) and store JSON; return descriptor and bytes."""
        if indent is None:
            data = json.dumps(obj, separators=(",", ":")).encode()
        else:
            data = json.dumps(obj, indent=indent).encode()
        return self.write_blob(data, media_type, **fields), data

    def add_ref(self, descriptor: Descriptor, name: str) -> None:
        """Record ``descriptor`` in ``index.json`` under ``name`` (replacing an entry of that
        name)."""
        entries = [
            e for e in self._read_index() if (e.get("annotations") or {}).get(REF_NAME) != name
        ]
        entry = descriptor.to_json()
        entry.pop("platform", None)
        entry["annotations"] = {**(entry.get("annotations") or {}), REF_NAME: name}
        entries.append(entry)
        self._write_index(entries)

    def refs(self) -> dict[str, Descriptor]:
        """``index.json`` entries by ref name (entries without one are keyed by digest)."""
        out: dict[str, Descriptor] = {}
        for entry in self._read_index():
            name = (entry.get("annotations") or {}).get(REF_NAME) or entry["digest"]
            out[name] = Descriptor.from_json(entry)
        return out

    def resolve(self, name: str) -> Descriptor:
        """The descriptor recorded under ``name``; KeyError if none."""
        return self.refs()[name]

    def skopeo_ref(self, name: str) -> str:
        """``oci:/path/to/layout:NAME`` for skopeo and podman."""
        return f"oci:{self.root}:{name}"

    def _read_index(self) -> list[dict[str, Any]]:
        data = json.loads((self.root / "index.json").read_text())
        entries: list[dict[str, Any]] = data.get("manifests") or []
        return entries

    def _write_index(self, entries: list[dict[str, Any]]) -> None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        (self.root / "index.json").write_text(json.dumps(index, indent=2))


# --------------------------------------------------------------------------------------------
# Streaming layer writer


class _SeededStream:
    """A file-like reader of ``size`` pseudo-random bytes, a pure function of ``seed``.

    Bytes come from ``random.Random`` in fixed 1 MiB blocks, so the content does not depend
    on the sizes the caller reads in.
    """

    def __init__(self, seed: str, size: int) -> None:
        self._rng = random.Random(f"transship-layer:{seed}")
        self._left = size
        self._block = b""
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        parts: list[bytes] = []
        wanted = n
        while wanted > 0:
            if self._pos >= len(self._block):
                self._block = self._rng.randbytes(_BLOCK)
                self._pos = 0
            take = min(wanted, len(self._block) - self._pos)
            parts.append(self._block[self._pos : self._pos + take])
            self._pos += take
            wanted -= take
        self._left -= n
        return b"".join(parts)


class _HashingSink:
    """Write-through: hashes and counts bytes, then forwards them to ``target.write``."""

    def __init__(self, target: BinaryIO | gzip.GzipFile) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def _tarinfo(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.mtime = _FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_layer(
    layout: OciLayout,
    *,
    seed: str,
    size: int,
    media_type: str = OCI_LAYER_GZIP,
    compresslevel: int | None = None,
    files: Mapping[str, bytes] | None = None,
) -> BuiltLayer:
    """Write a gzip'd tar layer holding ``size`` bytes of seeded data (+ small ``files``).

    The tar holds ``transship/``, ``transship/seed.txt`` (the seed, so equal sizes with
    different seeds differ), ``transship/data.bin`` (``size`` bytes; omitted when 0) and any
    ``files`` (path → content). ``compresslevel`` None → 0 above :data:`STORED_GZIP_ABOVE`
    bytes, else 6. Streams to a temp file; memory use does not grow with ``size``.
    """
    level = compresslevel if compresslevel is not None else (0 if size > STORED_GZIP_ABOVE else 6)
    blobs = layout.root / "blobs" / "sha256"
    fd, tmp_name = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            compressed = _HashingSink(raw)
            gz = gzip.GzipFile(
                filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=level
            )
            uncompressed = _HashingSink(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                tar.addfile(_tarinfo("transship/", directory=True))
                seed_bytes = seed.encode()
                tar.addfile(
                    _tarinfo("transship/seed.txt", len(seed_bytes)), _BytesReader(seed_bytes)
                )
                if size > 0:
                    tar.addfile(_tarinfo("transship/data.bin", size), _SeededStream(seed, size))
                for path, content in sorted((files or {}).items()):
                    tar.addfile(_tarinfo(path, len(content)), _BytesReader(content))
            gz.close()
        digest = "sha256:" + compressed.sha.hexdigest()
        final = layout.blob_path(digest)
        if final.exists():
            tmp.unlink()
        else:
            os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BuiltLayer(
        Descriptor(media_type, digest, compressed.size),
        diff_id="sha256:" + uncompressed.sha.hexdigest(),
        uncompressed_size=uncompressed.size,
    )


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self._data)
        out, self._data = self._data[:n], self._data[n:]
        return out


def foreign_layer(
    *,
    seed: str,
    size: int,
    urls: Sequence[str] | None = None,
    media_type: str = DOCKER_FOREIGN_LAYER,
) -> BuiltLayer:
    """Describe a foreign layer whose blob exists nowhere: digest and diff_id are derived
    from ``seed``.

    ``urls`` default to a loopback URL on the discard port (nothing listens; nothing ever
    leaves the machine even if some client did try to fetch it).
    """
    digest = sha256_digest(f"foreign-layer:{seed}".encode())
    if urls is None:
        urls = (f"http://127.0.0.1:9/foreign-layers/{digest.replace(':', '/')}",)
    return BuiltLayer(
        Descriptor(media_type, digest, size, urls=tuple(urls)),
        diff_id=sha256_digest(f"foreign-diff:{seed}".encode()),
        uncompressed_size=size,
    )


# --------------------------------------------------------------------------------------------
# Builders


def _config_json(platform: Platform, layers: Sequence[BuiltLayer], seed: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"org.transship.test.seed": seed},
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": "2023-11-14T22:13:20Z", "created_by": f"transship test layer {i}"}
            for i in range(len(layers))
        ],
    }
    if platform.variant:
        config["variant"] = platform.variant
    if platform.os_version:
        config["os.version"] = platform.os_version
    return config


def _as_platform(platform: str | Platform) -> Platform:
    return platform if isinstance(platform, Platform) else Platform.parse(platform)


def _write_image(
    layout: OciLayout,
    *,
    platform: Platform,
    layers: Sequence[BuiltLayer],
    seed: str,
    docker: bool,
    annotations: Mapping[str, str] | None = None,
) -> BuiltImage:
    config_desc, _ = layout.write_json(
        _config_json(platform, layers, seed),
        DOCKER_CONFIG if docker else OCI_CONFIG,
        indent=3 if docker else None,
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    desc, data = layout.write_json(
        manifest, manifest["mediaType"], indent=3 if docker else None, platform=platform
    )
    return BuiltImage(layout, desc, data, config_desc, tuple(layers), platform)


def build_image(
    layout: OciLayout,
    *,
    platform: str | Platform = "linux/amd64",
    layer_sizes: Sequence[int] = (4096,),
    seed: str = "image",
    tag: str | None = None,
    docker: bool = False,
    compresslevel: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> BuiltImage:
    """(a) A single-platform image with one layer per entry of ``layer_sizes`` (bytes of data).

    ``docker=True`` uses Docker schema 2 media types. ``tag`` records it in ``index.json``.
    """
    plat = _as_platform(platform)
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    layers = [
        write_layer(
            layout,
            seed=f"{seed}/{plat}/{i}",
            size=size,
            media_type=layer_type,
            compresslevel=compresslevel,
        )
        for i, size in enumerate(layer_sizes)
    ]
    image = _write_image(
        layout, platform=plat, layers=layers, seed=seed, docker=docker, annotations=annotations
    )
    if tag:
        layout.add_ref(image.descriptor, tag)
    return image


def build_index(
    layout: OciLayout,
    *,
    platforms: Sequence[str | Platform] = DEFAULT_PLATFORMS,
    layer_sizes: Sequence[int] | Mapping[str, Sequence[int]] = (4096,),
    shared_layer_size: int | None = None,
    seed: str = "index",
    tag: str | None = None,
    compresslevel: int | None = None,
    annotations: Mapping[str, str] | None = None,
) -> BuiltIndex:
    """(b) A multi-arch OCI index with one image per platform.

    ``layer_sizes`` applies to every platform, or maps ``"os/arch[/variant]"`` to its sizes.
    ``shared_layer_size``: also put one identical base layer of that size first in every
    child (to test blob de-duplication).
    """
    shared: list[BuiltLayer] = []
    if shared_layer_size is not None:
        shared.append(
            write_layer(
                layout, seed=f"{seed}/shared", size=shared_layer_size, compresslevel=compresslevel
            )
        )
    children: list[BuiltImage] = []
    for item in platforms:
        plat = _as_platform(item)
        sizes = layer_sizes[str(plat)] if isinstance(layer_sizes, Mapping) else layer_sizes
        own = [
            write_layer(layout, seed=f"{seed}/{plat}/{i}", size=size, compresslevel=compresslevel)
            for i, size in enumerate(sizes)
        ]
        children.append(
            _write_image(layout, platform=plat, layers=[*shared, *own], seed=seed, docker=False)
        )
    return _write_index(layout, children, docker=False, tag=tag, annotations=annotations)


def build_docker_list_with_foreign_layer(
    layout: OciLayout,
    *,
    seed: str = "windows",
    tag: str | None = None,
    windows_layer_sizes: Sequence[int] = (2048,),
    linux_layer_sizes: Sequence[int] = (4096,),
    foreign_layer_size: int = 1_234_567,
    foreign_urls: Sequence[str] | None = None,
    windows_os_version: str = WINDOWS_OS_VERSION,
) -> BuiltIndex:
    """(c) A Docker manifest list: windows/amd64 (foreign base layer + normal layers) and
    linux/amd64.

    The windows child's first layer is :func:`foreign_layer` (media type
    ``…rootfs.foreign.diff.tar.gzip``, ``urls``, no blob). Skopeo cannot read this root
    from the layout; push it with :func:`push_layout_http`.
    """
    win = Platform("windows", "amd64", os_version=windows_os_version)
    win_layers = [foreign_layer(seed=f"{seed}/base", size=foreign_layer_size, urls=foreign_urls)]
    win_layers += [
        write_layer(layout, seed=f"{seed}/{win}/{i}", size=size, media_type=DOCKER_LAYER_GZIP)
        for i, size in enumerate(windows_layer_sizes)
    ]
    lin = Platform("linux", "amd64")
    lin_layers = [
        write_layer(layout, seed=f"{seed}/{lin}/{i}", size=size, media_type=DOCKER_LAYER_GZIP)
        for i, size in enumerate(linux_layer_sizes)
    ]
    children = [
        _write_image(layout, platform=win, layers=win_layers, seed=seed, docker=True),
        _write_image(layout, platform=lin, layers=lin_layers, seed=seed, docker=True),
    ]
    return _write_index(layout, children, docker=True, tag=tag)


def build_artifact(
    layout: OciLayout,
    *,
    subject: Descriptor | BuiltImage | BuiltIndex,
    artifact_type: str = "application/vnd.transship.test.sbom+json",
    payload: bytes = b'{"sbom":"transship-test"}',
    payload_media_type: str = "application/json",
    annotations: Mapping[str, str] | None = None,
    tag: str | None = None,
) -> BuiltImage:
    """An OCI artifact (image manifest with ``artifactType``, empty config, one payload
    blob, ``subject``).

    The returned descriptor carries ``artifact_type`` and ``annotations``, as a referrers
    index entry for it should.
    """
    subject_desc = subject if isinstance(subject, Descriptor) else subject.descriptor
    subject_desc = Descriptor(subject_desc.media_type, subject_desc.digest, subject_desc.size)
    config = layout.write_blob(EMPTY_JSON, OCI_EMPTY)
    blob = layout.write_blob(payload, payload_media_type)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.to_json(),
        "layers": [blob.to_json()],
        "subject": subject_desc.to_json(),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    desc, data = layout.write_json(
        manifest,
        OCI_MANIFEST,
        artifact_type=artifact_type,
        annotations=dict(annotations) if annotations else None,
    )
    layer = BuiltLayer(blob, diff_id=blob.digest, uncompressed_size=blob.size)
    artifact = BuiltImage(layout, desc, data, config, (layer,), None, subject=subject_desc)
    if tag:
        layout.add_ref(desc, tag)
    return artifact


def _write_index(
    layout: OciLayout,
    children: Sequence[BuiltImage],
    *,
    docker: bool,
    tag: str | None,
    annotations: Mapping[str, str] | None = None,
) -> BuiltIndex:
    media_type = DOCKER_LIST if docker else OCI_INDEX
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [c.descriptor.to_json() for c in children],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    desc, data = layout.write_json(index, media_type, indent=3 if docker else None)
    built = BuiltIndex(layout, desc, data, tuple(children))
    if tag:
        layout.add_ref(desc, tag)
    return built


# --------------------------------------------------------------------------------------------
# Pushing over HTTP


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_layout_http` did. Digests are in push order (children before parents)."""

    root_digest: str
    root_media_type: str
    tag: str | None
    manifest_digests: tuple[str, ...]
    uploaded_blobs: tuple[str, ...]
    existing_blobs: tuple[str, ...]
    skipped_foreign: tuple[str, ...]
    digest_headers: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def blob_digests(self) -> tuple[str, ...]:
        """Every blob now in the repository because of this push (uploaded or already there)."""
        return (*self.uploaded_blobs, *self.existing_blobs)


def push_layout_http(
    source: OciLayout | Path | BuiltImage | BuiltIndex,
    base_url: str,
    repo: str,
    tag: str | None,
    auth: tuple[str, str] | None = None,
    *,
    source_ref: str | None = None,
    upload: UploadMode = "post_put",
    client: RegistryClient | None = None,
) -> PushResult:
    """Push one root manifest (index or image) and everything under it, byte-for-byte.

    ``source``: a built image/index, or a layout (``OciLayout`` or its path) whose root is
    the entry named ``source_ref`` (default: ``tag``, else the layout's only entry).
    Blobs the registry already has (HEAD 200) are not uploaded; foreign layers are skipped.
    Child manifests are PUT by digest, the root by ``tag`` (by digest when ``tag`` is None).
    Raises :class:`~tests.peers.oci_http.RegistryError` on any unexpected answer, and
    AssertionError when the registry reports a different digest than the bytes have.
    """
    if isinstance(source, (BuiltImage, BuiltIndex)):
        layout, root = source.layout, source.descriptor
    else:
        layout = source if isinstance(source, OciLayout) else OciLayout(Path(source))
        refs = layout.refs()
        name = source_ref or tag
        if name is not None and name in refs:
            root = refs[name]
        elif len(refs) == 1:
            root = next(iter(refs.values()))
        else:
            raise KeyError(f"layout {layout.root} has no single root for {name!r}: {sorted(refs)}")
    own_client = client is None
    http = client or RegistryClient(base_url, auth=auth)
    state = _PushState()
    try:
        _push_manifest(http, layout, repo, root, tag, state, upload, is_root=True)
    finally:
        if own_client:
            http.close()
    return PushResult(
        root_digest=root.digest,
        root_media_type=root.media_type,
        tag=tag,
        manifest_digests=tuple(state.manifests),
        uploaded_blobs=tuple(state.uploaded),
        existing_blobs=tuple(state.existing),
        skipped_foreign=tuple(state.foreign),
        digest_headers=dict(state.headers),
    )


@dataclass
class _PushState:
    manifests: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    headers: dict[str, str | None] = field(default_factory=dict)


def _push_manifest(
    http: RegistryClient,
    layout: OciLayout,
    repo: str,
    desc: Descriptor,
    tag: str | None,
    state: _PushState,
    upload: UploadMode,
    *,
    is_root: bool,
) -> None:
    if desc.digest in state.manifests:
        return
    data = layout.read_blob(desc.digest)
    if sha256_digest(data) != desc.digest:
        raise AssertionError(f"layout blob {desc.digest} is corrupt")
    parsed: dict[str, Any] = json.loads(data)
    media_type = parsed.get("mediaType") or desc.media_type
    if media_type in INDEX_TYPES:
        for child in parsed.get("manifests", []):
            _push_manifest(
                http, layout, repo, Descriptor.from_json(child), None, state, upload, is_root=False
            )
    else:
        blobs = [parsed["config"], *parsed.get("layers", [])]
        for obj in blobs:
            blob = Descriptor.from_json(obj)
            if blob.is_foreign:
                state.foreign.append(blob.digest)
            elif blob.digest in state.uploaded or blob.digest in state.existing:
                continue
            elif http.blob_exists(repo, blob.digest):
                state.existing.append(blob.digest)
            else:
                http.upload_blob(repo, blob.digest, layout.blob_path(blob.digest), mode=upload)
                state.uploaded.append(blob.digest)
    reference = tag if (is_root and tag) else desc.digest
    answered = http.put_manifest(repo, reference, data, media_type)
    if answered is not None and answered != desc.digest:
        raise AssertionError(f"registry computed {answered} for manifest {desc.digest}")
    state.headers[desc.digest] = answered
    state.manifests.append(desc.digest)
