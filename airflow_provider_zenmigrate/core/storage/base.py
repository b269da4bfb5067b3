"""The few operations the dump engine and the catalog need from a store (:class:`Backend`),
implemented with smart_open; :mod:`.local` and :mod:`.clouds` hold the stores."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, NamedTuple

from .locations import Location, scrub
from .sdks import import_smart_open

# One logger for the whole package, as when it was a single module.
logger = logging.getLogger(__package__)

#: Part size of multipart uploads unless ``transport_params["min_part_size"]`` says otherwise.
DEFAULT_PART_SIZE = 16 * 1024 * 1024


class ObjectInfo(NamedTuple):
    """One stored object: its key (a path for local files), size and modification time."""

    key: str
    size: int
    modified: dt.datetime | None


class Backend:
    """The few operations the dump engine and the catalog need from a store."""

    def __init__(self, location: Location, transport_params: dict[str, Any] | None) -> None:
        self.location = location
        params = dict(transport_params or {})
        self.client: Any = params.pop("client", None)
        self.part_size = int(params.pop("min_part_size", DEFAULT_PART_SIZE))
        self.extra = params

    def smart_open_params(self) -> dict[str, Any]:
        return {"client": self.client, "min_part_size": self.part_size, **self.extra}

    def open_writer(self, key: str) -> Any:
        """A smart_open writer for ``key`` that commits on ``close()``."""
        return import_smart_open().open(
            self.location.with_key(key),
            "wb",
            compression="disable",
            transport_params=self.smart_open_params(),
        )

    @contextmanager
    def upload(self, key: str) -> Iterator[IO[bytes]]:
        """A raw stream committed at ``key`` on success, aborted on any error (we call
        ``terminate()`` ourselves rather than trusting a context manager)."""
        writer = self.open_writer(key)
        try:
            yield writer
            writer.close()
        except BaseException:
            try:
                writer.terminate()
            except Exception as exc:  # noqa: BLE001 - the original error matters more
                logger.warning(
                    "could not abort the upload to %s: %s",
                    self.location.with_key(key),
                    scrub(str(exc)),
                )
            raise

    def open_reader(self, key: str) -> IO[bytes]:
        params = {k: v for k, v in self.smart_open_params().items() if k != "min_part_size"}
        stream: IO[bytes] = import_smart_open().open(
            self.location.with_key(key), "rb", compression="disable", transport_params=params
        )
        return stream

    def stat(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def abort_uploads(self, prefix: str) -> None:
        """Abort unfinished uploads under ``prefix`` (a killed writer's); stores whose
        unfinished uploads cost nothing and expire by themselves keep this default."""
        return None

    def read_bytes(self, key: str) -> bytes:
        with self.open_reader(key) as stream:
            return stream.read()

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.upload(key) as stream:
            stream.write(data)
