"""A backend's exception becomes a storage error (core/storage/failures.py) that names the
location without credentials, says "not found" where the store said so in any SDK's words,
and carries the cause's text scrubbed, never the cause itself."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_zenmigrate.core.errors import (
    DumpIntegrityError,
    StorageError,
    StorageNotFoundError,
)
from airflow_provider_zenmigrate.core.storage import parse_location, translated_errors

LOCATION = parse_location("s3://AKIA:SECRETKEY@bucket/nightly/db.jsonl.zst")


class NotFound(Exception):
    """Named like google-api-core's 404."""


class ResourceNotFoundError(Exception):
    """Named like azure-core's."""


class ClientError(Exception):
    """Shaped like botocore's: a response dict holding the code."""

    def __init__(self, code: str) -> None:
        super().__init__(f"An error occurred ({code})")
        self.response: dict[str, Any] = {"Error": {"Code": code}}


class HttpError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@pytest.mark.parametrize(
    ("exc", "not_found"),
    [
        (FileNotFoundError(2, "No such file"), True),
        (NotFound("gone"), True),
        (ResourceNotFoundError("gone"), True),
        (ClientError("NoSuchKey"), True),
        (ClientError("NoSuchBucket"), True),
        (ClientError("404"), True),
        (HttpError(404), True),
        (ClientError("AccessDenied"), False),
        (HttpError(503), False),
        (PermissionError(13, "denied"), False),
        (RuntimeError("NoSuchKey in the text only"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_not_found_is_recognised_in_every_sdks_words(exc: Exception, not_found: bool) -> None:
    with pytest.raises(StorageError) as caught, translated_errors("opening", LOCATION):
        raise exc
    assert isinstance(caught.value, StorageNotFoundError) is not_found
    assert str(caught.value).startswith(
        f"opening s3://bucket/nightly/db.jsonl.zst failed: {type(exc).__name__}: "
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_causes_secrets_stay_out_of_the_message() -> None:
    cause = RuntimeError(
        "PUT https://AKIA:SECRETKEY@bucket.s3.example/k?X-Amz-Signature=SIG123 password=pw9"
    )
    with pytest.raises(StorageError) as caught, translated_errors("writing", LOCATION):
        raise cause
    message = str(caught.value)
    assert all(secret not in message for secret in ("SECRETKEY", "SIG123", "pw9"))
    assert "https://bucket.s3.example/k" in message and "password=***" in message


def test_smart_open_giving_up_says_the_store_did_not_answer() -> None:
    with pytest.raises(StorageError) as caught, translated_errors("reading", LOCATION):
        raise OSError("<s3 call with AKIA:SECRETKEY> failed after 3 attempts")
    assert str(caught.value) == (
        "reading s3://bucket/nightly/db.jsonl.zst failed: OSError: the store did not answer "
        "(smart_open gave up after 3 attempts)"
    )


def test_our_own_errors_pass_through_unchanged() -> None:
    ours = DumpIntegrityError("line 3: altered")
    with pytest.raises(DumpIntegrityError) as caught, translated_errors("reading", LOCATION):
        raise ours
    assert caught.value is ours


def test_base_exceptions_are_not_translated() -> None:
    with pytest.raises(KeyboardInterrupt), translated_errors("reading", LOCATION):
        raise KeyboardInterrupt
