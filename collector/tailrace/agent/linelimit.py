"""The line-limit policy's byte-level rules: cutting on a UTF-8 boundary, repairing invalid UTF-8.

See docs/decisions/0003-line-limit-policy.md. The policy itself (truncate, drop, split) is applied
by `reassembly.Merger`, which sees whole reassembled lines.
"""

from __future__ import annotations

from typing import Final, Literal

Outcome = Literal["kept", "truncated", "dropped", "split"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("kept", "truncated", "dropped", "split")


def cut_point(data: bytes | bytearray, limit: int) -> int:
    """The largest length <= limit that does not end inside a UTF-8 sequence of `data`."""
    if len(data) <= limit:
        return len(data)
    cut = limit
    # Back off over continuation bytes (10xxxxxx) so the first byte left out starts a character.
    while cut > 0 and (data[cut] & 0xC0) == 0x80 and limit - cut < 3:
        cut -= 1
    if (data[cut] & 0xC0) == 0x80:
        return limit  # not UTF-8 around the cut anyway: cut at the byte limit
    return cut


def repair_utf8(data: bytes) -> bytes:
    """`data` unchanged when it is valid UTF-8, else with invalid sequences replaced by U+FFFD."""
    if data.isascii():
        return data
    try:
        data.decode()
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace").encode()
    return data
