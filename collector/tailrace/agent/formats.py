"""The log file formats the agent reads, behind one lookup.

A file's format is decided from its first line and kept for the file; a line that does not fit is
forwarded as-is with the parse-error flag (and counted) rather than dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from tailrace.agent import cri, dockerjson

Parser = Callable[[bytes], "tuple[int, int, bool, bytes] | None"]

PARSERS: Final[dict[str, Parser]] = {cri.NAME: cri.parse, dockerjson.NAME: dockerjson.parse}
HEADER_LENGTHS: Final[dict[str, Callable[[bytes], int]]] = {
    cri.NAME: cri.header_length,
    dockerjson.NAME: dockerjson.header_length,
}


def detect(first_line: bytes) -> str:
    """The format of a file from its first line: docker json-file lines are JSON objects."""
    return dockerjson.NAME if first_line.lstrip()[:2] == b'{"' else cri.NAME
