"""The audit ledger's hash chain.

Each event's hash is ``SHA-256(prev_hash ‖ canonical JSON of the whole event)`` where the event
is ``{seq, ts, type, actor, resource, action, detail}`` and canonical JSON means sorted keys, no
whitespace, UTF-8. The first event's ``prev_hash`` is 64 zeros. Changing, deleting or
reordering any event breaks the chain at that event; exporting the head hash elsewhere makes
truncation of the tail detectable too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

GENESIS = "0" * 64

# Row layout used by the writer, the API and the verifier.
COLUMNS = ("seq", "ts", "type", "actor", "resource", "action", "detail", "prev_hash", "hash")


# json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical(event: dict[str, Any]) -> bytes:
    return _CANONICAL.encode(event).encode()


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(event)).hexdigest()


def _event_text(
    seq: Any, ts: Any, type_: Any, actor: Any, resource: Any, action: Any, detail_text: str
) -> str:
    """The canonical JSON of an event whose detail is already canonical text: the very text
    ``canonical()`` gives for the whole event (keys in sorted order, strings escaped by the
    same function), without encoding the detail a second time. Values of unexpected types
    take the general path."""
    if type(seq) is int and all(type(v) is str for v in (ts, type_, actor, resource, action)):
        enc = encode_basestring
        return (
            f'{{"action":{enc(action)},"actor":{enc(actor)},"detail":{detail_text},'
            f'"resource":{enc(resource)},"seq":{seq},"ts":{enc(ts)},"type":{enc(type_)}}}'
        )
    detail = json.loads(detail_text)
    return _CANONICAL.encode(
        {
            "seq": seq,
            "ts": ts,
            "type": type_,
            "actor": actor,
            "resource": resource,
            "action": action,
            "detail": detail,
        }
    )


def _digest(prev_hash: str, text: str) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + text.encode()).hexdigest()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Chain:
    """The head of the chain, kept by the single writer so events are linked in order."""

    seq: int = 0
    hash: str = GENESIS

    def append(
        self,
        type_: str,
        actor: str,
        resource: str,
        action: str,
        detail: dict[str, Any],
        ts: str | None = None,
    ) -> tuple[Any, ...]:
        """Link a new event after the head; returns the row to insert."""
        seq = self.seq + 1
        ts = ts or now_iso()
        detail_text = _CANONICAL.encode(detail)
        digest = _digest(
            self.hash, _event_text(seq, ts, type_, actor, resource, action, detail_text)
        )
        row = (seq, ts, type_, actor, resource, action, detail_text, self.hash, digest)
        self.seq, self.hash = seq, digest
        return row


def row_to_event(row: tuple[Any, ...]) -> dict[str, Any]:
    seq, ts, type_, actor, resource, action, detail, prev_hash, digest = row
    return {
        "seq": seq,
        "ts": ts,
        "type": type_,
        "actor": actor,
        "resource": resource,
        "action": action,
        "detail": json.loads(detail),
        "prev_hash": prev_hash,
        "hash": digest,
    }


@dataclass
class Verifier:
    """Walks rows in ``seq`` order, in bounded memory, and names the first broken event."""

    expected_seq: int = 1
    prev_hash: str = GENESIS
    checked: int = 0
    broken_at: int | None = None
    reason: str | None = None
    expect_head: str | None = None
    head_found: bool = False

    def feed(self, row: tuple[Any, ...]) -> bool:
        """Check one row; False once the chain is broken (stop feeding then)."""
        if self.broken_at is not None:
            return False
        seq, ts, type_, actor, resource, action, detail, prev_hash, digest = row
        self.checked += 1
        if seq != self.expected_seq:
            return self._break(
                self.expected_seq, f"event {self.expected_seq} is missing (next is {seq})"
            )
        if prev_hash != self.prev_hash:
            return self._break(seq, "prev_hash does not match the previous event's hash")
        try:
            detail_obj = json.loads(detail)
        except (TypeError, ValueError):
            return self._break(seq, "detail is not valid JSON")
        if not isinstance(detail, str) or _CANONICAL.encode(detail_obj) != detail:
            # the writer stores canonical JSON: any other spelling was edited after the fact
            return self._break(seq, "detail is not in the canonical form it was written in")
        if (
            _digest(prev_hash, _event_text(seq, ts, type_, actor, resource, action, detail))
            != digest
        ):
            return self._break(seq, "hash does not match the event's content")
        if self.expect_head is not None and digest == self.expect_head:
            self.head_found = True
        self.prev_hash = digest
        self.expected_seq = seq + 1
        return True

    def _break(self, seq: int, reason: str) -> bool:
        self.broken_at, self.reason = seq, reason
        return False

    def result(self) -> dict[str, Any]:
        valid = self.broken_at is None
        reason = self.reason
        if valid and self.expect_head is not None and not self.head_found:
            valid, reason = (
                False,
                "the expected head hash is not in the chain (truncated or rewritten)",
            )
        return {
            "valid": valid,
            "events_checked": self.checked,
            "head_seq": self.expected_seq - 1 if self.broken_at is None else None,
            "head_hash": self.prev_hash if self.broken_at is None else None,
            "broken_at": self.broken_at,
            "reason": reason,
        }


def append_sync(
    conn: Any, type_: str, actor: str, resource: str, action: str, detail: dict[str, Any]
) -> tuple[Any, ...]:
    """Append one event from another process (the CLI), safely against a running gateway.

    The caller must have begun an IMMEDIATE transaction and commits it.
    """
    row = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    chain = Chain(row[0], row[1]) if row else Chain()
    event = chain.append(type_, actor, resource, action, detail)
    conn.execute(
        f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", event
    )
    return event
