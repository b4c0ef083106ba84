"""``memory://``: objects in a dict, for tests and single-process apps."""

from __future__ import annotations

import threading

from cloudq.core.errors import PayloadMissingError


class MemoryPayloadStore:
    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.location = f"memory://{prefix}"
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def key_for(self, name: str) -> str:
        return self.prefix + name

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise PayloadMissingError(f"payload object {key!r} is missing from {self.location}")
        return found

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def keys(self) -> list[str]:
        """Every key stored (tests check that objects are gone)."""
        with self._lock:
            return sorted(self._objects)
