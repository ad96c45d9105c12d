"""`storage_url` parsing: the forms it takes, and refusals that name the setting and never
quote a credential."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from transship.config import Settings
from transship.storage.location import (
    StorageLocation,
    StorageUrlError,
    parse_storage_url,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///srv/blobs", StorageLocation("file", path=Path("/srv/blobs"))),
        (
            "s3://my-bucket/reg/one?endpoint=http://127.0.0.1:8333/&region=eu-west-1",
            StorageLocation(
                "s3",
                bucket="my-bucket",
                prefix="reg/one",
                endpoint="http://127.0.0.1:8333",
                region="eu-west-1",
            ),
        ),
        ("s3://my-bucket", StorageLocation("s3", bucket="my-bucket")),
        (
            "azure://acct01/blobs/prefix/?endpoint=https://acct01.blob.core.windows.net",
            StorageLocation(
                "azure",
                account="acct01",
                bucket="blobs",
                prefix="prefix",
                endpoint="https://acct01.blob.core.windows.net",
            ),
        ),
    ],
)
def test_forms(url: str, expected: StorageLocation) -> None:
    assert parse_storage_url(url) == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ftp://host/x", "unsupported scheme"),
        ("s3://Bad_Bucket/x", "not an S3 bucket name"),
        ("s3://AKIAKEY:topsecret@bucket/x", "credentials do not belong"),
        ("s3://bucket/x?secret_access_key=topsecret", "unknown query parameter"),
        ("s3://bucket/x?endpoint=127.0.0.1:9000", "endpoint must be"),
        ("s3://bucket/../x", "'..'"),
        ("azure://acct01/x/p", "not an Azure container name"),
        ("azure://a/blobs", "not an Azure storage account name"),
        ("azure://acct01/blobs?sig=topsecret", "unknown query parameter"),
        ("file://host/x", "file:///absolute/path"),
        ("file:///x?y=1", "no query"),
    ],
)
def test_refusals_name_the_setting_not_the_secret(url: str, complaint: str) -> None:
    with pytest.raises(StorageUrlError, match="storage_url") as caught:
        parse_storage_url(url)
    assert complaint in str(caught.value)
    assert "topsecret" not in str(caught.value)


def test_settings_refuse_a_bad_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(data_dir=tmp_path, storage_url="s3://bucket/x?sig=topsecret")
    assert "storage_url" in str(caught.value)
    # The message serve prints is built from the errors' msg fields (the input is not).
    assert all("topsecret" not in e["msg"] for e in caught.value.errors())


def test_settings_default_to_the_filesystem(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.storage_url is None and settings.storage_location is None
    assert Settings(data_dir=tmp_path, storage_url="  ").storage_location is None
    assert Settings(data_dir=tmp_path, storage_url="s3://b-1/p").storage_location == (
        StorageLocation("s3", bucket="b-1", prefix="p")
    )
