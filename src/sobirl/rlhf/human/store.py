"""Durable preference labels from people: a SQLite file (WAL mode) of queued pairs and their answers.

Tables (``labels.sqlite`` in a run directory, by convention):

- ``pairs``: ``id`` (never reused), ``left`` and ``right`` (the two clips, bytes of ``media_type``), ``data`` (bytes
  kept for the asker, e.g. the pair's arrays), ``metadata`` (JSON, e.g. the true returns), ``queued_at`` (Unix time),
  the lease: ``lease_client``, ``lease_until`` (Unix time), and ``key`` (unique where given: the content a pair was
  queued with, :class:`NewPair`).
- ``answers``: ``seq`` (the order the answers came in), ``pair_id``, ``choice`` (one of :data:`CHOICES`), ``client``,
  ``answered_at`` (Unix time) and ``collected`` (the :meth:`LabelStore.collect` round that handed the answer on; NULL
  until then).

Contract:

- Every write is one ``BEGIN IMMEDIATE`` transaction, committed before the call returns (``synchronous=FULL``): an
  acknowledged answer is on disk, and a reopened store has every answer and the still-pending queue.
- :meth:`LabelStore.answer` to an unknown pair raises :class:`UnknownPairError`, a second answer to a pair
  :class:`AlreadyAnsweredError`, a choice not in :data:`CHOICES` ``ValueError``; each changes nothing.
- :meth:`LabelStore.next_pair` leases the pair it hands out to the client for ``lease_s`` seconds: no other client
  gets it meanwhile, and the same client gets it again (a reloaded tab). An expired lease returns the pair to the
  queue. Any client may answer an unanswered pair.
- Threads and processes may share a store file: each thread of a :class:`LabelStore` has its own connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sobirl.validation import check_choice, check_int, check_range

CHOICES = ("left", "right", "equal", "cant_tell")
"""A person's answers to "which clip is better?"."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    left BLOB NOT NULL,
    right BLOB NOT NULL,
    media_type TEXT NOT NULL,
    data BLOB,
    metadata TEXT NOT NULL,
    queued_at REAL NOT NULL,
    lease_client TEXT,
    lease_until REAL,
    key TEXT UNIQUE
);
CREATE TABLE IF NOT EXISTS answers (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id INTEGER NOT NULL UNIQUE REFERENCES pairs (id),
    choice TEXT NOT NULL CHECK (choice IN ({", ".join(f"'{c}'" for c in CHOICES)})),
    client TEXT,
    answered_at REAL NOT NULL,
    collected INTEGER
);
"""

_PENDING = "NOT EXISTS (SELECT 1 FROM answers WHERE answers.pair_id = pairs.id)"
"""SQL: the pair has no answer yet."""


class UnknownPairError(KeyError):
    """No queued pair has this id."""


class AlreadyAnsweredError(ValueError):
    """The pair has an answer already."""


@dataclass(frozen=True)
class NewPair:
    """A pair to queue: its two clips (bytes of ``media_type``), bytes kept for the asker, JSON-able metadata, and a
    key naming its content (a pair queued with the key of one queued before is that pair: it is not asked twice)."""

    left: bytes
    right: bytes
    media_type: str
    data: bytes | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None


@dataclass(frozen=True)
class QueuedPair:
    """A queued pair: its id, the two clips, their media type, its metadata and when it was queued (Unix time)."""

    id: int
    left: bytes
    right: bytes
    media_type: str
    metadata: dict[str, Any]
    queued_at: float


@dataclass(frozen=True)
class Answer:
    """An answer: the pair, the choice (one of :data:`CHOICES`), who gave it and when (Unix time)."""

    pair_id: int
    choice: str
    client: str | None
    answered_at: float


@dataclass(frozen=True)
class Collected:
    """An answer handed on by :meth:`LabelStore.collect`, with its pair's ``data``."""

    pair_id: int
    choice: str
    data: bytes | None


class LabelStore:
    """The queue of pairs to label and their answers, in the SQLite file ``path`` (module docstring).

    Args:
        path: the database file; created with its tables when missing.
        lease_s: how long a pair handed out by :meth:`next_pair` stays reserved for its client (seconds, ``> 0``).
    """

    def __init__(self, path: str | os.PathLike[str], *, lease_s: float = 120.0) -> None:
        self.path = Path(path)
        self.lease_s = check_range("lease_s", lease_s, low=0.0, low_open=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._write() as db:
            for statement in _SCHEMA.split(";")[:-1]:
                db.execute(statement)

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connection; the store is unusable afterwards."""
        with self._lock:
            for db in self._connections:
                db.close()
            self._connections.clear()

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (opened at its first use; autocommit, so reads see the latest commit)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed on exit, rolled back on an exception."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def enqueue(self, pairs: Iterable[NewPair]) -> list[int]:
        """Queue ``pairs`` (all or none: one transaction) and return their ids, in order; a pair whose ``key`` was
        queued before gets that pair's id and is not queued again (a resumed run asking again what it asked before
        its checkpoint)."""
        now = time.time()
        ids = []
        with self._write() as db:
            for p in pairs:
                known = None if p.key is None else db.execute("SELECT id FROM pairs WHERE key = ?", (p.key,)).fetchone()
                if known is not None:
                    ids.append(known[0])
                    continue
                ids.append(
                    db.execute(
                        "INSERT INTO pairs (left, right, media_type, data, metadata, queued_at, key) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (p.left, p.right, p.media_type, p.data, json.dumps(dict(p.metadata)), now, p.key),
                    ).lastrowid
                )
        return ids

    def pair(self, pair_id: int) -> QueuedPair:
        """The pair ``pair_id``, answered or not. Raises :class:`UnknownPairError`."""
        row = (
            self._db()
            .execute("SELECT id, left, right, media_type, metadata, queued_at FROM pairs WHERE id = ?", (pair_id,))
            .fetchone()
        )
        if row is None:
            raise UnknownPairError(pair_id)
        return QueuedPair(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])

    def next_pair(self, client: str) -> QueuedPair | None:
        """The oldest unanswered pair that ``client`` holds a lease on, else the oldest one nobody holds, leased to
        ``client`` for ``lease_s`` seconds from now; None when every unanswered pair is leased to others."""
        now = time.time()
        with self._write() as db:
            row = db.execute(
                f"SELECT id FROM pairs WHERE {_PENDING} AND (lease_until IS NULL OR lease_until <= :now "
                "OR lease_client = :client) ORDER BY (lease_client IS :client AND lease_until > :now) DESC, id LIMIT 1",
                {"client": client, "now": now},
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE pairs SET lease_client = ?, lease_until = ? WHERE id = ?", (client, now + self.lease_s, row[0])
            )
        return self.pair(row[0])

    def answer(self, pair_id: int, choice: str, *, client: str | None = None) -> Answer:
        """Record ``choice`` for pair ``pair_id`` (committed when this returns) and end its lease.

        Raises:
            ValueError: ``choice`` is not one of :data:`CHOICES`.
            UnknownPairError: no pair has this id.
            AlreadyAnsweredError: the pair has an answer already.
        """
        check_choice("choice", choice, CHOICES)
        with self._write() as db:
            if db.execute("SELECT 1 FROM pairs WHERE id = ?", (pair_id,)).fetchone() is None:
                raise UnknownPairError(pair_id)
            previous = db.execute("SELECT choice FROM answers WHERE pair_id = ?", (pair_id,)).fetchone()
            if previous is not None:
                raise AlreadyAnsweredError(f"pair {pair_id} is answered already ({previous[0]})")
            answer = Answer(pair_id, choice, client, time.time())
            db.execute(
                "INSERT INTO answers (pair_id, choice, client, answered_at) VALUES (?, ?, ?, ?)",
                (pair_id, choice, client, answer.answered_at),
            )
            db.execute("UPDATE pairs SET lease_client = NULL, lease_until = NULL WHERE id = ?", (pair_id,))
        return answer

    def answers(self) -> list[Answer]:
        """Every answer, in the order they came in."""
        rows = self._db().execute("SELECT pair_id, choice, client, answered_at FROM answers ORDER BY seq")
        return [Answer(*row) for row in rows]

    def unanswered(self, pair_ids: Sequence[int]) -> list[int]:
        """Those of ``pair_ids`` that are queued and have no answer yet, in order."""
        rows = self._db().execute(
            f"SELECT id FROM pairs WHERE {_PENDING} AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(pair_ids)),),
        )
        waiting = {row[0] for row in rows}
        return [i for i in pair_ids if i in waiting]

    def counts(self) -> dict[str, int]:
        """``{"labelled": answers, "queued": pairs without an answer}``."""
        db = self._db()
        labelled = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        queued = db.execute(f"SELECT COUNT(*) FROM pairs WHERE {_PENDING}").fetchone()[0]
        return {"labelled": labelled, "queued": queued}

    def collect(self, pair_ids: Sequence[int] | None = None) -> tuple[int, list[Collected]]:
        """Hand on the answers not collected yet (of ``pair_ids`` only, unless None), in the order they came in,
        marking them with a new round number; returns the round (the latest one when nothing was collected) and them.
        """
        with self._write() as db:
            latest = db.execute("SELECT COALESCE(MAX(collected), 0) FROM answers").fetchone()[0]
            query = (
                "SELECT answers.pair_id, choice, data FROM answers JOIN pairs ON pairs.id = answers.pair_id "
                "WHERE collected IS NULL"
            )
            args: tuple[Any, ...] = ()
            if pair_ids is not None:
                query += " AND answers.pair_id IN (SELECT value FROM json_each(?))"
                args = (json.dumps(list(pair_ids)),)
            found = [Collected(*row) for row in db.execute(query + " ORDER BY seq", args)]
            if not found:
                return latest, []
            db.execute(
                "UPDATE answers SET collected = ? WHERE pair_id IN (SELECT value FROM json_each(?))",
                (latest + 1, json.dumps([c.pair_id for c in found])),
            )
        return latest + 1, found

    def uncollect_after(self, last_round: int) -> int:
        """Make the answers collected in rounds after ``last_round`` collectable again (a run resumed from a checkpoint
        that had not seen them); returns how many."""
        check_int("last_round", last_round)
        with self._write() as db:
            return db.execute("UPDATE answers SET collected = NULL WHERE collected > ?", (last_round,)).rowcount
