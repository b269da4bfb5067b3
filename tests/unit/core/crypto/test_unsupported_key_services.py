"""Google Cloud KMS and Azure Key Vault keys: refused at once, with the services there are,
where the docs say why these two are missing, and nothing of what the caller passed along
(issue 26)."""

from __future__ import annotations

import base64
import os

import pytest

from airflow_provider_zenmigrate.core.crypto import AzureKeyVaultKey, GcpKmsKey
from airflow_provider_zenmigrate.core.crypto.keys import SUPPORTED_KEY_SERVICES
from airflow_provider_zenmigrate.core.errors import EncryptionKeyError


@pytest.mark.parametrize(
    ("provider", "service", "key_id"),
    [
        (GcpKmsKey, "Google Cloud KMS", "projects/p/locations/l/keyRings/r/cryptoKeys/k"),
        (AzureKeyVaultKey, "Azure Key Vault", "https://zmkm.vault.azure.net/keys/k"),
    ],
)
def test_an_unsupported_key_service_names_the_supported_ones_and_why(
    provider: type, service: str, key_id: str
) -> None:
    secret = base64.b64encode(os.urandom(24)).decode()
    with pytest.raises(EncryptionKeyError) as caught:
        provider(key_id, client_secret=secret, credentials=secret)
    message = str(caught.value)
    assert message.startswith(f"{service} keys are not yet supported")
    assert SUPPORTED_KEY_SERVICES in message
    assert "--key-env" in message and "--kms-key-id" in message
    assert "docs/dump-format.md" in message
    assert secret not in message and secret not in repr(caught.value)
