"""Key-encryption keys (KEKs): who wraps and unwraps a dump's data key.

Each backup has its own random 256-bit data key; a :class:`KeyProvider` wraps it for the
envelope and unwraps it for reading. Providers:

* :class:`LocalKey`: 32 bytes given in Python or base64 in an environment variable. Its
  id is a fingerprint (HMAC-SHA-256 of a fixed label under the key, 16 hex digits); the data
  key is wrapped with AES key wrap (RFC 3394) under a key derived from it by HKDF-SHA-256.
* :class:`AwsKmsKey`: AWS KMS ``Encrypt``/``Decrypt`` of the data key with an encryption
  context naming the purpose; the id is the key's ARN as KMS reports it.
* :class:`GcpKmsKey`, :class:`AzureKeyVaultKey`: not yet supported; they say so. The
  project only ships a key service it tests against a real server on 127.0.0.1 (AWS KMS:
  moto's server), and no Cloud KMS or Key Vault emulator installs from PyPI, npm or Debian
  (those that exist come from the Go module proxy, Maven Central or Docker Hub).

Key material appears in no message, ``repr`` or header: only ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import EncryptionKeyError, KeyServiceError
from .envelope import WrappedKey

KEY_BYTES = 32
_NOT_A_DATA_KEY = "the dump's data key is not 32 bytes: its envelope was altered"
LOCAL = "local"
AWS_KMS = "aws-kms"
#: What AWS KMS binds to every wrapped data key (checked again on Decrypt).
KMS_CONTEXT = {"purpose": "zenmigrate-dump-data-key"}


def new_data_key() -> bytes:
    """A fresh random 256-bit data key (one per backup)."""
    return os.urandom(KEY_BYTES)


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps data keys for new dumps and unwraps those of dumps it can read."""

    kind: str

    @property
    def key_id(self) -> str: ...

    def wrap(self, data_key: bytes) -> WrappedKey: ...

    def can_unwrap(self, wrapped: WrappedKey) -> bool: ...

    def unwrap(self, wrapped: WrappedKey) -> bytes: ...


class LocalKey:
    """A 32-byte key held by the caller (an environment variable, a secret store)."""

    kind = LOCAL

    def __init__(self, key: bytes, source: str = "the key given") -> None:
        if not isinstance(key, bytes | bytearray):
            raise EncryptionKeyError(f"{source}: a key is 32 bytes, not a {type(key).__name__}")
        if len(key) != KEY_BYTES:
            raise EncryptionKeyError(
                f"{source} holds {len(key)} bytes; a key is {KEY_BYTES} bytes "
                "(make one with: openssl rand -base64 32)"
            )
        self._key = bytes(key)
        self._id = hmac.new(self._key, b"zenmigrate key id v1", hashlib.sha256).hexdigest()[:16]
        self._wrapping = HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"zenmigrate kek v1"
        ).derive(self._key)

    @classmethod
    def from_base64(cls, text: str, source: str = "the key given") -> LocalKey:
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise EncryptionKeyError(
                f"{source} is not base64 (make a key with: openssl rand -base64 32)"
            ) from None
        return cls(key, source)

    @classmethod
    def from_env(cls, name: str) -> LocalKey:
        """The key in environment variable ``name`` (base64 of 32 bytes)."""
        text = os.environ.get(name)
        if not text:
            raise EncryptionKeyError(f"environment variable {name} holds no key (unset or empty)")
        return cls.from_base64(text, f"environment variable {name}")

    @property
    def key_id(self) -> str:
        return self._id

    def __repr__(self) -> str:
        return f"LocalKey(key_id={self._id!r})"

    def wrap(self, data_key: bytes) -> WrappedKey:
        wrapped = keywrap.aes_key_wrap(self._wrapping, data_key)
        return WrappedKey(provider=LOCAL, key_id=self._id, wrap="AES-KW", wrapped=wrapped)

    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        return wrapped.provider == LOCAL and wrapped.key_id == self._id

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        if wrapped.wrap != "AES-KW":
            raise EncryptionKeyError(f"unknown key wrapping {wrapped.wrap!r} for a local key")
        try:
            key = keywrap.aes_key_unwrap(self._wrapping, wrapped.wrapped)
        except keywrap.InvalidUnwrap:
            raise EncryptionKeyError(
                f"local key {self._id} does not unwrap this dump's data key: its envelope "
                "was altered"
            ) from None
        if len(key) != KEY_BYTES:
            raise EncryptionKeyError(
                "the dump's data key is not 32 bytes: its envelope was altered"
            )
        return key


class AwsKmsKey:
    """A key in AWS KMS: ``key_id`` is its id, ARN or alias (``alias/backups``).

    ``client`` is a boto3 KMS client; without one, a client is made from the default
    credential chain (``region`` and ``endpoint_url`` as given). Reading uses the key the
    dump names (its ARN) with this provider's client, so one provider reads the dumps of
    every KMS key its credentials may use.
    """

    kind = AWS_KMS

    def __init__(
        self,
        key_id: str,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        if not key_id or not isinstance(key_id, str):
            raise EncryptionKeyError("an AWS KMS key needs its id, ARN or alias")
        self._key_id = key_id
        self._client = client
        self._region = region
        self._endpoint_url = endpoint_url

    @property
    def key_id(self) -> str:
        return self._key_id

    def __repr__(self) -> str:
        return f"AwsKmsKey(key_id={self._key_id!r})"

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=20)
            self._client = boto3.session.Session().client(
                "kms", region_name=self._region, endpoint_url=self._endpoint_url, config=config
            )
        return self._client

    def _call(self, action: str, key_id: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: dict[str, Any] = getattr(self.client(), action)(**kwargs)
            return answer
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            text = str(exc.response.get("Error", {}).get("Message", ""))[:200]
            if code in {"DisabledException", "KMSInvalidStateException"}:
                raise EncryptionKeyError(
                    f"AWS KMS key {key_id} is disabled or pending deletion ({code}): it "
                    "cannot wrap or unwrap data keys"
                ) from None
            if code in {"NotFoundException", "InvalidCiphertextException", "IncorrectKeyException"}:
                raise EncryptionKeyError(
                    f"AWS KMS refused key {key_id} ({code}): unknown key, or not the key "
                    "that wrapped this dump"
                ) from None
            if code in {"AccessDeniedException", "AccessDenied"}:
                raise EncryptionKeyError(
                    f"AWS KMS denied {action} with key {key_id} ({code})"
                ) from None
            raise KeyServiceError(f"AWS KMS {action} failed ({code}: {text})") from None
        except BotoCoreError as exc:
            raise KeyServiceError(
                f"AWS KMS could not be reached or used for {action} ({type(exc).__name__}: {exc})"
            ) from None

    def _check_enabled(self, key_id: str) -> None:
        """Refuse a disabled or deleted key with a clear error before using it. KMS itself
        refuses them on Encrypt/Decrypt (DisabledException, KMSInvalidStateException, mapped
        below); this asks first because not every KMS (moto's server) enforces the state.
        Credentials without kms:DescribeKey skip the check and leave it to KMS."""
        try:
            answer = self._call("describe_key", key_id, KeyId=key_id)
        except EncryptionKeyError as exc:
            if "denied" in str(exc):
                return
            raise
        state = str(answer.get("KeyMetadata", {}).get("KeyState", "Enabled"))
        if state != "Enabled":
            raise EncryptionKeyError(
                f"AWS KMS key {key_id} is disabled or pending deletion (state {state}): it "
                "cannot wrap or unwrap data keys"
            )

    def wrap(self, data_key: bytes) -> WrappedKey:
        self._check_enabled(self._key_id)
        answer = self._call(
            "encrypt",
            self._key_id,
            KeyId=self._key_id,
            Plaintext=data_key,
            EncryptionContext=KMS_CONTEXT,
        )
        return WrappedKey(
            provider=AWS_KMS,
            key_id=str(answer.get("KeyId") or self._key_id),
            wrap="KMS-Encrypt",
            wrapped=bytes(answer["CiphertextBlob"]),
        )

    def can_unwrap(self, wrapped: WrappedKey) -> bool:
        return wrapped.provider == AWS_KMS

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        self._check_enabled(wrapped.key_id)
        answer = self._call(
            "decrypt",
            wrapped.key_id,
            KeyId=wrapped.key_id,
            CiphertextBlob=wrapped.wrapped,
            EncryptionContext=KMS_CONTEXT,
        )
        key = bytes(answer["Plaintext"])
        if len(key) != KEY_BYTES:
            raise EncryptionKeyError(
                "the dump's data key is not 32 bytes: its envelope was altered"
            )
        return key


#: The key services there are, as the error for an unsupported one names them.
SUPPORTED_KEY_SERVICES = "a local key (--key-env) and AWS KMS (--kms-key-id)"


class _NotYetSupported:
    """A provider whose key service this version cannot use yet: it says so at once, before
    anything is written, and names the services there are (why these two are missing is a
    matter for the docs, not for a user's error)."""

    kind = "unsupported"
    service = ""

    def __init__(self, key_id: str, **_options: Any) -> None:
        raise EncryptionKeyError(
            f"{self.service} keys are not yet supported; the key services supported are "
            f"{SUPPORTED_KEY_SERVICES} (see 'Encrypted dumps' in docs/dump-format.md)"
        )


class GcpKmsKey(_NotYetSupported):
    kind = "gcp-kms"
    service = "Google Cloud KMS"


class AzureKeyVaultKey(_NotYetSupported):
    kind = "azure-key-vault"
    service = "Azure Key Vault"
