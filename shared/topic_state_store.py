"""State read from Kafka topics, kept on disk (rocksdict) with the positions it was read up to.

A holder that replays compacted topics at start (the admin directory) keeps its records
here instead of in memory: a restart then reads only what was written since, and memory
is the store's cache, not the number of keys. Records and the positions they were read
up to go to disk in ONE write batch (:meth:`TopicStateStore.commit`), so a process killed
at any moment leaves a store consistent with its stored positions: resuming from them
re-applies at most what the store already holds (whole-state records: harmless).

Writes go to a pending batch that :meth:`get` and :meth:`scan` already see; nothing is on
disk until :meth:`commit`. Keys are bytes and sorted, so a prefix is a cheap range.
An empty ``path`` is a temporary directory removed at :meth:`close` (a full replay at
every start, as a memory holder does).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson

# Where the positions are kept: keys starting with NUL are the store's own, before every
# record key (record keys must not start with NUL).
_POSITIONS_KEY = b"\x00positions"
_FIRST_RECORD_KEY = b"\x01"


class Position(NamedTuple):
    """Where a partition was read to: the next offset to read, and the offset and
    fingerprint of the last record read (-1: none), which tell a recreated topic apart."""

    next_offset: int
    last_offset: int = -1
    last_fingerprint: int = 0


Positions = dict[tuple[str, int], Position]  # (topic, partition) -> position


def _rocksdict() -> Any:
    try:
        import rocksdict
    except ImportError as exc:  # the disk extra is missing
        raise RuntimeError(
            "a disk store needs rocksdict: pip install -e '.[disk]' (the images have it)"
        ) from exc
    return rocksdict


class TopicStateStore:
    """A sorted key-value store on disk with the topic positions its contents were read to."""

    def __init__(self, path: str = "") -> None:
        self._rd = _rocksdict()
        self._temporary = not path
        self.path = Path(path or tempfile.mkdtemp(prefix="topic-state-"))
        self.path.mkdir(parents=True, exist_ok=True)
        if self._temporary:  # removed with the object too, when nobody closed it
            weakref.finalize(self, shutil.rmtree, str(self.path), True)
        self._db: Any = self._open()
        self._pending: dict[bytes, bytes | None] = {}  # None: a deletion

    def _open(self) -> Any:
        return self._rd.Rdict(str(self.path), self._rd.Options(raw_mode=True))

    # --- reads (pending writes included) --------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        if key in self._pending:
            return self._pending[key]
        found: bytes | None = self._db.get(key)
        return found

    def scan(self, prefix: bytes, after: bytes = b"") -> Generator[tuple[bytes, bytes], None, None]:
        """(key, value) of keys starting with ``prefix`` and greater than ``after``, in key
        order. Close the iterator (or read it to its end) before :meth:`commit`."""
        start = max(prefix, after + b"\x00", _FIRST_RECORD_KEY)
        pending = sorted(
            (k, v) for k, v in self._pending.items() if k.startswith(prefix) and k >= start
        )
        stored = self._db.items(from_key=start)
        try:
            yield from _merged(_while_prefixed(stored, prefix), pending)
        finally:
            del stored  # an open iterator pins the database

    # --- writes -------------------------------------------------------------------

    def put(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def delete(self, key: bytes) -> None:
        self._pending[key] = None

    def commit(self, positions: Mapping[tuple[str, int], Position] | None = None) -> None:
        """Write the pending records and, if given, the positions they were read up to
        (merged over those stored), in one atomic batch."""
        if not self._pending and not positions:
            return
        batch = self._rd.WriteBatch(raw_mode=True)
        for key, value in self._pending.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if positions:
            batch.put(_POSITIONS_KEY, _encode_positions({**self.positions(), **positions}))
        self._db.write(batch)
        self._pending.clear()

    def positions(self) -> Positions:
        """The positions stored with the records (empty: nothing read into this store)."""
        raw = self._db.get(_POSITIONS_KEY)
        if raw is None:
            return {}
        return {
            (topic, int(p)): Position(*at)
            for topic, parts in orjson.loads(raw).items()
            for p, at in parts.items()
        }

    def wipe(self) -> None:
        """Forget everything, records and positions (the topics must be read again)."""
        self._pending.clear()
        self._db.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def close(self) -> None:
        self._pending.clear()
        self._db.close()
        if self._temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def _encode_positions(positions: Mapping[tuple[str, int], Position]) -> bytes:
    out: dict[str, dict[str, list[int]]] = {}
    for (topic, partition), at in positions.items():
        out.setdefault(topic, {})[str(partition)] = list(at)
    return orjson.dumps(out)


def _while_prefixed(
    items: Iterator[tuple[bytes, bytes]], prefix: bytes
) -> Iterator[tuple[bytes, bytes]]:
    for key, value in items:
        if not key.startswith(prefix):
            return
        yield key, value


def _merged(
    stored: Iterator[tuple[bytes, bytes]], pending: list[tuple[bytes, bytes | None]]
) -> Iterator[tuple[bytes, bytes]]:
    """Two key-sorted streams as one, the pending write winning (a None: deleted)."""
    i = 0
    for key, value in stored:
        while i < len(pending) and pending[i][0] < key:
            if pending[i][1] is not None:
                yield pending[i]  # type: ignore[misc]
            i += 1
        if i < len(pending) and pending[i][0] == key:
            if pending[i][1] is not None:
                yield pending[i]  # type: ignore[misc]
            i += 1
            continue
        yield key, value
    for key, pvalue in pending[i:]:
        if pvalue is not None:
            yield key, pvalue
