"""The core's lazy imports keep every public name where it was (issue 27).

``core.crypto`` loads its ``cryptography``-backed names on first use. ``MigrationUtils``
checks its ``encryption`` field without importing the crypto stack. The catalog imports
multi-part and verification modules where they run. What a backup leaves unimported is
checked in tests/cli/test_backup_imports.py; that the names and checks still work is
checked here.
"""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from airflow_provider_zenmigrate.core import crypto
from airflow_provider_zenmigrate.core.crypto import keys, policy, segments
from airflow_provider_zenmigrate.core.utils import MigrationUtils
from tests.support.command_line import python_c

#: An in-memory SQLite database: MigrationUtils is built, never connected.
MEMORY = make_url("sqlite://")


@pytest.mark.parametrize("name", crypto.__all__)
def test_every_name_of_the_crypto_package_resolves_to_its_definition(name: str) -> None:
    value = getattr(crypto, name)
    home = next((m for m in (keys, policy, segments) if name in vars(m)), None)
    if home is not None:
        assert value is vars(home)[name]
    assert name in dir(crypto)


def test_an_unknown_crypto_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = crypto.no_such_name


def test_importing_the_crypto_package_or_the_utils_does_not_import_cryptography() -> None:
    script = (
        "import sys\n"
        "from airflow_provider_zenmigrate.core.crypto import Envelope, MAGIC\n"
        "from airflow_provider_zenmigrate.core.utils import MigrationUtils\n"
        "from airflow_provider_zenmigrate.core import catalog\n"
        "parts = 'airflow_provider_zenmigrate.core.parts'\n"
        "print('cryptography' in sys.modules, parts in sys.modules)\n"
        "from airflow_provider_zenmigrate.core.crypto import Encryption\n"
        "print('cryptography' in sys.modules)\n"
    )
    assert python_c(script).split() == ["False", "False", "True"]


def test_migration_utils_keeps_an_encryption_and_refuses_anything_else() -> None:
    encryption = crypto.Encryption(crypto.LocalKey(os.urandom(32)))
    utils = MigrationUtils(url=MEMORY, encryption=encryption)
    assert utils.encryption is encryption
    assert MigrationUtils(url=MEMORY).encryption is None
    assert MigrationUtils(url=MEMORY, encryption=None).encryption is None
    with pytest.raises(ValidationError, match="encryption must be an Encryption"):
        MigrationUtils(url=MEMORY, encryption="a key")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not LocalKey"):
        local = crypto.LocalKey(os.urandom(32))
        MigrationUtils(url=MEMORY, encryption=local)  # type: ignore[arg-type]
    assert "encryption" not in repr(utils)
