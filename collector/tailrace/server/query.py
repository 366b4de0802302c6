"""From a request's query parameters to a `Query`, and from a `Query` to a live-record predicate.

Every native parameter is checked here, so a bad one is answered 400 naming the parameter and the
reason before anything touches the store. Compatibility surfaces reuse the pieces (`parse_*`,
`matches`) for their own parameter names.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tailrace import conventions
from tailrace.server import cursors, errors, formats
from tailrace.server.storage import base

MAX_LIMIT = 5000
DEFAULT_LIMIT = 100
MAX_TAIL_LINES = 100_000
MAX_VALUE_CHARS = 1024
STREAMS = ("stdout", "stderr", "system")
_LEVEL_ALIASES = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "PANIC": "FATAL"}


@dataclass(frozen=True, slots=True)
class LogRequest:
    """A parsed log read: what to fetch, how much, and whether to keep following."""

    query: base.Query  # filters + paging, ready for Store.query
    filters: base.Query  # the filters alone (what a cursor is bound to)
    fingerprint_extra: str  # filters held only in resolved form (see cursors.fingerprint)
    follow: bool
    paged: bool  # a full page means there may be more: answer a next cursor


def _single(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if len(value) > MAX_VALUE_CHARS:
        raise errors.bad_parameter(name, f"longer than {MAX_VALUE_CHARS} characters")
    return value


def parse_bool(params: Mapping[str, str], name: str) -> bool:
    value = _single(params, name)
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise errors.bad_parameter(name, "expected true or false", value)


def parse_int(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    value = _single(params, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise errors.bad_parameter(name, "expected an integer", value) from None
    if not low <= number <= high:
        raise errors.bad_parameter(name, f"must be between {low} and {high}", value)
    return number


def parse_list(params: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = _single(params, name)
    if value is None:
        return ()
    items = tuple(item.strip() for item in value.split(",") if item.strip())
    if not items:
        raise errors.bad_parameter(name, "expected a comma-separated list", value)
    return items


def parse_levels(params: Mapping[str, str], name: str = "level") -> tuple[str, ...]:
    levels = []
    for item in parse_list(params, name):
        level = _LEVEL_ALIASES.get(item.upper(), item.upper())
        if level not in conventions.LEVEL_RANK:
            raise errors.bad_parameter(
                name, f"unknown level {item!r}; expected {', '.join(conventions.LEVELS)}", item
            )
        levels.append(level)
    return tuple(dict.fromkeys(levels))


def parse_streams(params: Mapping[str, str], name: str = "stream") -> tuple[str, ...]:
    streams = parse_list(params, name)
    for stream in streams:
        if stream not in STREAMS:
            raise errors.bad_parameter(
                name, f"unknown stream {stream!r}; expected {', '.join(STREAMS)}", stream
            )
    return streams


def parse_time_param(params: Mapping[str, str], name: str) -> int | None:
    value = _single(params, name)
    if value is None:
        return None
    try:
        return formats.parse_time(value)
    except ValueError as err:
        raise errors.bad_parameter(name, str(err), value) from None


def parse_window(
    params: Mapping[str, str], now_ns: int | None = None
) -> tuple[int | None, int | None, str]:
    """(since_ns, until_ns, fingerprint extra) from since/until or last."""
    since = parse_time_param(params, "since")
    until = parse_time_param(params, "until")
    last = _single(params, "last")
    extra = ""
    if last is not None:
        if since is not None:
            raise errors.bad_parameter("last", "cannot be combined with since", last)
        try:
            span = formats.parse_duration(last)
        except ValueError as err:
            raise errors.bad_parameter("last", str(err), last) from None
        since = (now_ns if now_ns is not None else time.time_ns()) - span
        extra = f"last={last}"
    if since is not None and until is not None and since >= until:
        raise errors.bad_parameter("until", "must be later than since")
    return since, until, extra


def parse_filters(params: Mapping[str, str], scope: base.Query) -> tuple[base.Query, str]:
    """The scope (namespace, workload or pod) narrowed by the filter parameters."""
    since, until, extra = parse_window(params)
    text = _single(params, "q")
    if text is not None and not base.text_tokens(text):
        raise errors.bad_parameter("q", "must contain at least one letter or digit", text)
    containers = parse_list(params, "container")
    filters = dataclasses.replace(
        scope,
        text=text,
        levels=parse_levels(params),
        streams=parse_streams(params),
        containers=containers or scope.containers,
        execution_id=_single(params, "executionId") or None,
        since_ns=since,
        until_ns=until,
    )
    return filters, extra


def cursor_filters(filters: base.Query, extra: str) -> base.Query:
    """The filters a cursor is bound to: a `last` window binds by its text, not its clock value."""
    return dataclasses.replace(filters, since_ns=None) if extra else filters


def parse_log_request(
    params: Mapping[str, str],
    scope: base.Query,
    signer: cursors.Signer,
    default_limit: int = DEFAULT_LIMIT,
) -> LogRequest:
    filters, extra = parse_filters(params, scope)
    fingerprinted = cursor_filters(filters, extra)
    follow = parse_bool(params, "follow")
    limit = parse_int(params, "limit", 1, MAX_LIMIT)
    tail = parse_int(params, "tailLines", 0, MAX_TAIL_LINES)
    order_value = _single(params, "order")
    if order_value not in (None, "asc", "desc"):
        raise errors.bad_parameter("order", "expected asc or desc", order_value)
    order: base.Order = "desc" if order_value == "desc" else "asc"
    cursor = _single(params, "cursor")
    if follow and filters.until_ns is not None:
        raise errors.bad_parameter("until", "cannot be combined with follow=true")
    if follow and order == "desc":
        raise errors.bad_parameter("order", "follow=true reads in ascending order")
    if tail is not None and cursor is not None:
        raise errors.bad_parameter("tailLines", "cannot be combined with cursor")
    if tail is not None and order == "desc":
        raise errors.bad_parameter("tailLines", "returns the newest lines in ascending order")
    after: tuple[int, int] | None = None
    if cursor:
        try:
            position = signer.decode(cursor, fingerprinted, extra)
        except cursors.InvalidCursor as err:
            raise errors.bad_parameter("cursor", str(err)) from None
        if position.order != order:
            raise errors.bad_parameter(
                "cursor", f"was made for order={position.order}, not order={order}"
            )
        after = (position.ts_ns, position.id)
    query = dataclasses.replace(
        filters,
        after=after,
        order=order,
        limit=limit if limit is not None else default_limit,
        tail=tail,
    )
    return LogRequest(
        query=query,
        filters=fingerprinted,
        fingerprint_extra=extra,
        follow=follow,
        paged=tail is None,
    )


def next_cursor(
    request: LogRequest, records: list[base.StoredRecord], signer: cursors.Signer
) -> str | None:
    if not request.paged or not records or len(records) < request.query.limit:
        return None
    last = records[-1]
    position = cursors.Position(last.ts_ns, last.id, request.query.order)
    return signer.encode(position, request.filters, request.fingerprint_extra)
