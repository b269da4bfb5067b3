"""Local keys: ids are fingerprints, bad keys are named clearly, material never shows."""

from __future__ import annotations

import base64
import os

import pytest

from airflow_provider_zenmigrate.core.crypto import (
    AzureKeyVaultKey,
    Encryption,
    GcpKmsKey,
    LocalKey,
)
from airflow_provider_zenmigrate.core.crypto.envelope import WrappedKey
from airflow_provider_zenmigrate.core.errors import EncryptionKeyError


def test_wrap_unwrap_and_a_stable_fingerprint() -> None:
    raw = os.urandom(32)
    key = LocalKey(raw)
    assert LocalKey(raw).key_id == key.key_id and len(key.key_id) == 16
    assert key.key_id not in raw.hex()
    data_key = os.urandom(32)
    wrapped = key.wrap(data_key)
    assert wrapped.wrapped != data_key and data_key not in wrapped.wrapped
    assert key.unwrap(wrapped) == data_key
    assert raw.hex() not in repr(key) and key.key_id in repr(key)


def test_altered_wrapped_key_is_refused() -> None:
    key = LocalKey(os.urandom(32))
    wrapped = key.wrap(os.urandom(32))
    bad = WrappedKey(wrapped.provider, wrapped.key_id, wrapped.wrap, bytes(len(wrapped.wrapped)))
    with pytest.raises(EncryptionKeyError, match="envelope was altered"):
        key.unwrap(bad)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_of_the_wrong_length(size: int) -> None:
    with pytest.raises(EncryptionKeyError, match=f"holds {size} bytes; a key is 32 bytes"):
        LocalKey(os.urandom(size))


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(32)
    monkeypatch.setenv("ZM_TEST_KEY", base64.b64encode(raw).decode())
    assert LocalKey.from_env("ZM_TEST_KEY").key_id == LocalKey(raw).key_id
    monkeypatch.delenv("ZM_TEST_KEY")
    with pytest.raises(EncryptionKeyError, match="ZM_TEST_KEY holds no key"):
        LocalKey.from_env("ZM_TEST_KEY")
    monkeypatch.setenv("ZM_TEST_KEY", "not base64 at all!")
    with pytest.raises(EncryptionKeyError, match="ZM_TEST_KEY is not base64") as caught:
        LocalKey.from_env("ZM_TEST_KEY")
    assert "not base64 at all" not in str(caught.value)
    short = base64.b64encode(os.urandom(20)).decode()
    monkeypatch.setenv("ZM_TEST_KEY", short)
    with pytest.raises(EncryptionKeyError, match="holds 20 bytes") as caught:
        LocalKey.from_env("ZM_TEST_KEY")
    assert short not in str(caught.value)


def test_unsupported_key_services_say_so() -> None:
    with pytest.raises(EncryptionKeyError, match="Google Cloud KMS keys are not yet supported"):
        GcpKmsKey("projects/p/locations/l/keyRings/r/cryptoKeys/k")
    with pytest.raises(EncryptionKeyError, match="Azure Key Vault keys are not yet supported"):
        AzureKeyVaultKey("https://vault/keys/k")


def test_encryption_without_keys_cannot_encrypt() -> None:
    with pytest.raises(EncryptionKeyError, match="no key to encrypt with"):
        Encryption().seal_new()
    with pytest.raises(TypeError, match="key providers"):
        Encryption([b"x" * 32])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="segment size"):
        Encryption(LocalKey(os.urandom(32)), segment_size=10)
