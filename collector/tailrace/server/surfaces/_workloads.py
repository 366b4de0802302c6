"""What the five facades share: finding a workload by uid or name, and walking the store.

Every platform names its unit differently (a function uuid, a pipeline name, a deployment id);
all of them resolve to a registered `Function` or `Pipeline` here, and the caller is authorized
in that workload's namespace through the same `ServerContext.reader` as the native API, so rate
limits and auth failures are counted once, the same way, whatever surface was called.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass

from starlette.requests import Request

from tailrace import conventions
from tailrace.server import context, errors
from tailrace.server.storage import base

log = logging.getLogger(__name__)

PAGE = 1000  # store page size when a facade walks records it must filter itself


@contextlib.contextmanager
def internal_errors(what: str) -> Iterator[None]:
    """Answer a bug with the platform's documented 500 body rather than a bare text page."""
    try:
        yield
    except (errors.ApiError, base.StoreError):
        raise
    except Exception as err:
        log.exception("%s failed", what)
        raise errors.ApiError(500, "internal", "internal server error") from err


class Ambiguous(errors.ApiError):
    """Several workloads carry the name; the uid tells them apart."""

    def __init__(self, ident: str, namespaces: Iterable[str]) -> None:
        where = sorted(set(namespaces))
        super().__init__(
            409,
            "ambiguous_name",
            f"several workloads are named {ident!r} (namespaces {', '.join(where)}); "
            "use the workload's uid",
            {"name": ident, "namespaces": where},
        )


async def resolve(
    ctx: context.ServerContext,
    request: Request,
    ident: str,
    kinds: Iterable[str] = conventions.WORKLOAD_KINDS,
    namespace: str | None = None,
) -> base.Workload | None:
    """The live workload whose uid or name is `ident`, with the caller authorized to read it.

    None when there is none (the caller is still authenticated and rate limited, so an unknown
    id tells an anonymous client nothing a known one would not).
    """
    wanted = set(kinds)
    live = [
        w
        for w in await ctx.store.list_workloads(namespace)
        if not w.deleted and w.key.kind in wanted
    ]
    found = [w for w in live if w.uid == ident] or [w for w in live if w.key.name == ident]
    if not found:
        await ctx.reader(request, namespace)
        return None
    if len(found) > 1:
        await ctx.reader(request, namespace)
        raise Ambiguous(ident, (w.key.namespace for w in found))
    workload = found[0]
    await ctx.reader(request, workload.key.namespace)
    return workload


def scope(workload: base.Workload) -> base.Query:
    key = workload.key
    return base.Query(namespace=key.namespace, kind=key.kind, workload=key.name)


@dataclass(frozen=True, slots=True)
class Containers:
    """A workload's container names as its pods declare them."""

    app: tuple[str, ...]
    init: tuple[str, ...]


async def containers(ctx: context.ServerContext, key: base.WorkloadKey) -> Containers:
    app: dict[str, None] = {}
    init: dict[str, None] = {}
    for pod in await ctx.store.list_pods(key):
        spec = pod.obj.get("spec") if isinstance(pod.obj, dict) else None
        if not isinstance(spec, dict):
            continue
        for field, names in (("containers", app), ("initContainers", init)):
            for item in spec.get(field) or []:
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and name != conventions.COLLECTOR_CONTAINER:
                    names[name] = None
    return Containers(tuple(app), tuple(init))


async def walk(
    ctx: context.ServerContext,
    first: base.Query,
    keep: Callable[[base.StoredRecord], bool] = lambda record: True,
) -> AsyncIterator[base.StoredRecord]:
    """Every record of `first` that `keep` accepts, page by page in the query's order.

    For filters the store cannot express (flags, attrs, derived fields); the caller stops
    iterating when it has enough.
    """
    page = dataclasses.replace(first, limit=PAGE, tail=None)
    while True:
        records = await ctx.store.query(page)
        for record in records:
            if keep(record):
                yield record
        if len(records) < page.limit:
            return
        last = records[-1]
        if page.after_id is not None:
            page = dataclasses.replace(page, after_id=last.id)
        else:
            page = dataclasses.replace(page, after=(last.ts_ns, last.id))
