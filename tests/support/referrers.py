"""Referrers made by hand for import tests: a cosign-format signature (ECDSA P-256 over
cosign's "simple signing" payload, stored under `sha256-<hex>.sig`), OCI 1.1 artifacts with
a `subject`, and the referrers index of the OCI fallback tag scheme (`sha256-<hex>`).

No cosign or notation binary is needed: what cosign writes is reproduced here, and
`verify_cosign` checks a signature the way `cosign verify --key` does (the signature over
the payload bytes, the payload's digest claim)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.peers.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    BuiltImage,
    BuiltIndex,
    BuiltLayer,
    Descriptor,
    OciLayout,
    push_layout_http,
)
from tests.peers.oci_http import RegistryClient

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def cosign_tag(digest: str, suffix: str = "sig") -> str:
    """cosign's tag for the signature (`sig`), attestation (`att`) or SBOM (`sbom`) of
    `digest`."""
    return f"{digest.replace(':', '-')}.{suffix}"


def fallback_tag(digest: str) -> str:
    """The OCI fallback tag scheme's tag of the referrers index of `digest`."""
    return digest.replace(":", "-")


@dataclass(frozen=True)
class CosignSignature:
    """A signature built by `sign_cosign`: its manifest (in the layout), the payload bytes
    signed, and the key to verify it with."""

    image: BuiltImage
    payload: bytes
    signature_b64: str
    public_key_pem: bytes


def sign_cosign(layout: OciLayout, image_digest: str, docker_reference: str) -> CosignSignature:
    """A cosign-format signature of `image_digest` with a fresh ECDSA P-256 key: the simple
    signing payload as the manifest's one layer, its signature (base64, DER) in the layer
    annotation `dev.cosignproject.cosign/signature`, as cosign writes it."""
    key = ec.generate_private_key(ec.SECP256R1())
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": image_digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    layer = layout.write_blob(payload, SIMPLESIGNING, annotations={SIGNATURE_ANNOTATION: signature})
    config_json = {
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
    }
    config, _ = layout.write_json(config_json, OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json()],
    }
    desc, data = layout.write_json(manifest, OCI_MANIFEST)
    built = BuiltImage(
        layout, desc, data, config, (BuiltLayer(layer, layer.digest, layer.size),), None
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return CosignSignature(built, payload, signature, public)


def verify_cosign(manifest: bytes, payload: bytes, public_key_pem: bytes) -> dict[str, Any]:
    """Check a cosign signature as `cosign verify --key` does: the manifest's simple-signing
    layer carries a signature the key verifies over `payload` (its blob). Returns the
    payload's claims. Raises AssertionError when anything does not verify."""
    document = json.loads(manifest)
    layers = [x for x in document["layers"] if x["mediaType"] == SIMPLESIGNING]
    assert len(layers) == 1, document
    signature = base64.b64decode(layers[0]["annotations"][SIGNATURE_ANNOTATION])
    key = serialization.load_pem_public_key(public_key_pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the cosign signature does not verify over the payload") from None
    claims: dict[str, Any] = json.loads(payload)
    return claims


def artifact_descriptor(artifact: BuiltImage, artifact_type: str) -> Descriptor:
    """The descriptor of `artifact` as a referrers index lists it (with `artifactType`)."""
    desc = artifact.descriptor
    return Descriptor(desc.media_type, desc.digest, desc.size, artifact_type=artifact_type)


def push_fallback_index(
    base_url: str, repository: str, subject: str, referrers: list[Descriptor]
) -> str:
    """PUT the referrers index of `subject` under its fallback tag (`sha256-<hex>`), as the
    OCI distribution spec tells a client to when a registry has no referrers API. Returns
    the index digest."""
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [d.to_json() for d in referrers],
    }
    data = json.dumps(index, separators=(",", ":")).encode()
    client = RegistryClient(base_url)
    try:
        answered = client.put_manifest(repository, fallback_tag(subject), data, OCI_INDEX)
    finally:
        client.close()
    assert answered is not None
    return answered


def push_referrer(
    artifact: BuiltImage | BuiltIndex, base_url: str, repository: str, tag: str | None = None
) -> None:
    """Push a referrer (by digest, or under `tag`), blobs first."""
    push_layout_http(artifact, base_url, repository, tag)
