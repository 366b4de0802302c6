"""Opaque, signed paging cursors.

A cursor names the last record a client has seen, by (ts_ns, id): ordering by that pair is total,
so many records sharing one timestamp are neither skipped nor repeated across pages. It also
carries the order and a fingerprint of the query's filters, and is signed with HMAC-SHA256, so a
client can neither forge a position nor replay a cursor against a different query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass

from tailrace.server.storage import base

_VERSION = 1
# version, order (0 asc / 1 desc), ts_ns, id, query fingerprint
_LAYOUT = struct.Struct(">BBqQ8s")
_MAC_BYTES = 16


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Position:
    ts_ns: int
    id: int
    order: base.Order


def fingerprint(query: base.Query, extra: str = "") -> bytes:
    """What must stay the same between pages: every filter, not the paging fields.

    `extra` stands in for filters the query holds only in resolved form, such as `last=5m`,
    whose resolved lower bound moves with the clock from one page to the next.
    """
    parts = (
        query.namespace,
        query.kind,
        query.workload,
        query.pod,
        query.containers,
        query.streams,
        query.levels,
        query.min_level,
        query.text,
        query.execution_id,
        query.restart,
        query.sources,
        query.since_ns,
        query.until_ns,
        extra,
    )
    return hashlib.sha256(repr(parts).encode()).digest()[:8]


class Signer:
    """Encodes and verifies cursors with one secret (random per process when none is given)."""

    def __init__(self, secret: bytes = b"") -> None:
        self._key = secret or secrets.token_bytes(32)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, position: Position, query: base.Query, extra: str = "") -> str:
        payload = _LAYOUT.pack(
            _VERSION,
            0 if position.order == "asc" else 1,
            position.ts_ns,
            position.id,
            fingerprint(query, extra),
        )
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def decode(self, cursor: str, query: base.Query, extra: str = "") -> Position:
        """The position a cursor holds, if it was signed here and was made for this query."""
        if len(cursor) > 128:
            raise InvalidCursor("cursor is too long")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (ValueError, TypeError) as err:
            raise InvalidCursor("cursor is not valid base64url") from err
        if len(raw) != _LAYOUT.size + _MAC_BYTES:
            raise InvalidCursor("cursor has the wrong length")
        payload, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidCursor("cursor signature does not match (forged or from another server)")
        version, order_code, ts_ns, record_id, print_ = _LAYOUT.unpack(payload)
        if version != _VERSION:
            raise InvalidCursor(f"cursor version {version} is not supported")
        if not hmac.compare_digest(print_, fingerprint(query, extra)):
            raise InvalidCursor("cursor belongs to a different query")
        return Position(ts_ns, record_id, "asc" if order_code == 0 else "desc")
