"""The optional cloud SDKs: each object store's SDK is an install extra, not a dependency.

``pip install 'airflow-provider-zenmigrate[s3]'`` (``[gcs]``, ``[azure]``, ``[all]``) brings
the SDK that smart_open needs for that store, as smart_open's and Airflow's own providers'
extras do. A location whose SDK is missing fails when its backend is opened, with a message
that names the extra to install, rather than deep inside smart_open.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, NamedTuple

from ..errors import StorageError

if TYPE_CHECKING:
    from types import ModuleType

    from .locations import Location


class Sdk(NamedTuple):
    """The SDK one storage scheme needs: a module to import, its name, and its extra."""

    module: str
    name: str
    extra: str


SDKS = {
    "s3": Sdk("boto3", "the AWS SDK (boto3)", "s3"),
    "gs": Sdk("google.cloud.storage", "the Google Cloud Storage SDK", "gcs"),
    "azure": Sdk("azure.storage.blob", "the Azure Blob Storage SDK", "azure"),
}


def require_sdk(location: Location) -> None:
    """Raise a :class:`StorageError` naming the extra to install when the SDK for
    ``location``'s store cannot be imported; local files need none."""
    require_scheme_sdk(location.scheme, location.safe)


def require_scheme_sdk(scheme: str, what: str) -> None:
    """The same check for a store named by its scheme (``s3``, ``gs``, ``azure``); ``what``
    says what needs it in the message (a location, a storage connection)."""
    sdk = SDKS.get(scheme)
    if sdk is None:
        return
    try:
        importlib.import_module(sdk.module)
    except ImportError:
        raise StorageError(
            f"{what} needs {sdk.name}, which is not installed: "
            f"pip install 'airflow-provider-zenmigrate[{sdk.extra}]'"
        ) from None


def import_smart_open() -> ModuleType:
    """smart_open, imported on first use: its import probes every cloud SDK it can find
    (about half a second), which commands that never touch an object store should not pay."""
    import smart_open

    return smart_open
