"""A `Store` held in process memory: the reference semantics, and the fake for tests.

Everything is a plain list or dict and every query is a scan, so it is only for small data sets;
the contract suite holds it to exactly the behaviour of the SQLite store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from tailrace import conventions, records
from tailrace.server.storage import base, retention_policy


@dataclass(slots=True)
class _Drops:
    namespace: str
    kind: str
    workload: str
    pod: str
    pod_uid: str
    container: str
    lines: int


class MemoryStore:
    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._records: list[base.StoredRecord] = []  # in id order
        self._next_id = 1
        self._offsets: dict[str, int] = {}
        self._drops: list[_Drops] = []
        self._workloads: dict[base.WorkloadKey, base.Workload] = {}
        self._pods: dict[tuple[str, str], base.Pod] = {}
        self._meta = {
            "schema_version": "1",
            "instance_id": uuid.uuid4().hex,
            "created_ns": str(clock()),
            "backend": "memory",
        }
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise base.StoreUnavailable("the memory store is not open")

    # -- ingest ---------------------------------------------------------------------------------

    def _attribute(self, record: base.NewRecord) -> None:
        if not record.kind:
            pod = self._pods.get((record.namespace, record.pod))
            if pod is not None and pod.workload is not None and _same_pod(pod.uid, record.pod_uid):
                record.kind = pod.workload.kind
                record.workload = pod.workload.name
        if record.kind and not record.workload_uid:
            key = base.WorkloadKey(record.namespace, record.kind, record.workload)
            workload = self._workloads.get(key)
            if workload is not None:
                record.workload_uid = workload.uid

    def _admits(self, record: base.NewRecord) -> bool:
        if not record.kind:
            return True
        workload = self._workloads.get(
            base.WorkloadKey(record.namespace, record.kind, record.workload)
        )
        if workload is None:
            return True
        rank = base.admitted_rank(workload.spec)
        return rank is not None and conventions.LEVEL_RANK.get(record.level, 0) >= rank

    def _store(self, record: base.NewRecord, now: int) -> base.StoredRecord:
        stored = base.stamp(record, self._next_id, now)
        self._next_id += 1
        self._records.append(stored)
        return stored

    async def append(self, batches: Sequence[base.IngestBatch]) -> base.AppendResult:
        self._check_open()
        now = self._clock()
        stored: list[base.StoredRecord] = []
        duplicates = 0
        filtered = 0
        touched: dict[str, int] = {}
        for batch in batches:
            mark = self._offsets.get(batch.source_key, 0)
            new_mark = max([mark, batch.covered_offset, *batch.end_offsets])
            for record, end in zip(batch.records, batch.end_offsets, strict=True):
                if end <= mark:
                    duplicates += 1
                    continue
                self._attribute(record)
                if not self._admits(record):
                    filtered += 1
                    continue
                stored.append(self._store(record, now))
            if batch.dropped_lines and new_mark > mark:
                probe = batch.attribution_probe()
                self._attribute(probe)
                self._drops.append(_Drops(*batch.drops_row(probe)))
            self._offsets[batch.source_key] = new_mark
            touched[batch.source_key] = new_mark
        return base.AppendResult(stored, duplicates, touched, filtered)

    async def append_records(self, records: Sequence[base.NewRecord]) -> list[base.StoredRecord]:
        self._check_open()
        now = self._clock()
        stored = []
        for record in records:
            self._attribute(record)
            if self._admits(record):
                stored.append(self._store(record, now))
        return stored

    async def durable_offsets(self, keys: Sequence[str]) -> dict[str, int]:
        self._check_open()
        return {key: self._offsets[key] for key in keys if key in self._offsets}

    # -- reading --------------------------------------------------------------------------------

    def _matching(self, query: base.Query, *, paging: bool) -> list[base.StoredRecord]:
        base.check_query(query)
        predicate = _predicate(query, paging=paging)
        return [record for record in self._records if predicate(record)]

    async def query(self, query: base.Query) -> list[base.StoredRecord]:
        self._check_open()
        found = self._matching(query, paging=True)
        if query.after_id is not None:
            return found[: query.limit]  # already in id order
        found.sort(key=_ts_id)
        if query.tail is not None:
            return found[len(found) - query.tail :] if query.tail else []
        if query.order == "desc":
            found.reverse()
        return found[: query.limit]

    async def count(self, query: base.Query) -> int:
        self._check_open()
        return len(self._matching(query, paging=False))

    async def stats(self, query: base.Query) -> base.Stats:
        self._check_open()
        found = self._matching(query, paging=False)
        by_level: dict[str, int] = {}
        by_container: dict[str, int] = {}
        by_execution: dict[str, int] = {}
        by_namespace: dict[str, int] = {}
        by_workload: dict[str, int] = {}
        by_pod: dict[str, int] = {}
        truncated = split = size = 0
        last: int | None = None
        for record in found:
            _bump(by_level, record.level)
            _bump(by_container, record.container)
            if record.execution_id:
                _bump(by_execution, record.execution_id)
            _bump(by_namespace, record.namespace)
            if record.kind:
                _bump(by_workload, f"{record.kind}/{record.workload}")
            _bump(by_pod, record.pod)
            truncated += bool(record.flags & records.FLAG_TRUNCATED)
            split += bool(record.flags & records.FLAG_SPLIT)
            size += record.size
            last = record.ts_ns if last is None else max(last, record.ts_ns)
        dropped = sum(d.lines for d in self._drops if _drops_match(d, query))
        return base.Stats(
            total=len(found),
            by_level=by_level,
            by_container=by_container,
            by_execution=by_execution,
            by_namespace=by_namespace,
            by_workload=by_workload,
            truncated_lines=truncated,
            split_lines=split,
            dropped_lines=dropped,
            last_ts_ns=last,
            bytes=size,
            by_pod=by_pod,
        )

    async def delete(self, query: base.Query) -> int:
        self._check_open()
        doomed = {record.id for record in self._matching(query, paging=False)}
        self._records = [record for record in self._records if record.id not in doomed]
        return len(doomed)

    async def last_id(self) -> int:
        self._check_open()
        return self._next_id - 1

    async def totals(self) -> base.Totals:
        self._check_open()
        return base.Totals(len(self._records), sum(r.size for r in self._records))

    # -- registry -------------------------------------------------------------------------------

    async def put_workload(self, workload: base.Workload) -> None:
        self._check_open()
        self._workloads[workload.key] = replace(workload)

    async def get_workload(self, key: base.WorkloadKey) -> base.Workload | None:
        self._check_open()
        workload = self._workloads.get(key)
        return replace(workload) if workload is not None else None

    async def find_workload(self, namespace: str | None, ident: str) -> base.Workload | None:
        self._check_open()
        by_uid = [w for w in self._workloads.values() if w.uid == ident and not w.deleted]
        if by_uid:
            return replace(by_uid[0])
        by_name = [
            w
            for w in self._workloads.values()
            if w.key.name == ident
            and not w.deleted
            and (namespace is None or w.key.namespace == namespace)
        ]
        return replace(by_name[0]) if len(by_name) == 1 else None

    async def list_workloads(self, namespace: str | None = None) -> list[base.Workload]:
        self._check_open()
        return [
            replace(w)
            for key, w in sorted(self._workloads.items(), key=lambda item: _key_order(item[0]))
            if namespace is None or key.namespace == namespace
        ]

    async def delete_workload(self, key: base.WorkloadKey) -> None:
        self._check_open()
        self._workloads.pop(key, None)

    async def put_pod(self, pod: base.Pod) -> None:
        self._check_open()
        self._pods[(pod.namespace, pod.name)] = replace(pod)
        if pod.workload is not None:
            await self.assign_pod_workload(pod.namespace, pod.name, pod.workload, pod.uid)

    async def assign_pod_workload(
        self, namespace: str, pod: str, workload: base.WorkloadKey, pod_uid: str = ""
    ) -> int:
        self._check_open()
        registered = self._workloads.get(workload)
        uid = registered.uid if registered is not None else ""
        updated = 0
        for record in self._records:
            if (
                not record.kind
                and record.namespace == namespace
                and record.pod == pod
                and (not pod_uid or _same_pod(pod_uid, record.pod_uid))
            ):
                record.kind = workload.kind
                record.workload = workload.name
                record.workload_uid = uid
                updated += 1
        for drops in self._drops:
            if (
                not drops.kind
                and drops.namespace == namespace
                and drops.pod == pod
                and (not pod_uid or _same_pod(pod_uid, drops.pod_uid))
            ):
                drops.kind = workload.kind
                drops.workload = workload.name
        return updated

    async def get_pod(self, namespace: str, name: str) -> base.Pod | None:
        self._check_open()
        pod = self._pods.get((namespace, name))
        return replace(pod) if pod is not None else None

    async def list_pods(self, workload: base.WorkloadKey | None = None) -> list[base.Pod]:
        self._check_open()
        return [
            replace(pod)
            for _, pod in sorted(self._pods.items())
            if workload is None or pod.workload == workload
        ]

    async def delete_pod(self, namespace: str, name: str) -> None:
        self._check_open()
        self._pods.pop((namespace, name), None)

    # -- retention ------------------------------------------------------------------------------

    async def apply_retention(self, now_ns: int) -> int:
        self._check_open()
        deleted = 0
        for workload in list(self._workloads.values()):
            try:
                policy = retention_policy.of_spec(workload.spec)
            except retention_policy.InvalidRetention:
                continue
            if policy.unlimited:
                continue
            key = workload.key
            mine = sorted(
                (
                    r
                    for r in self._records
                    if (r.namespace, r.kind, r.workload) == (key.namespace, key.kind, key.name)
                ),
                key=_ts_id,
                reverse=True,
            )
            keep: list[base.StoredRecord] = []
            size = 0
            for record in mine:
                if policy.max_age_ns is not None and record.ts_ns < now_ns - policy.max_age_ns:
                    break
                if policy.max_lines is not None and len(keep) >= policy.max_lines:
                    break
                size += record.size
                if policy.max_bytes is not None and size > policy.max_bytes:
                    break
                keep.append(record)
            doomed = {r.id for r in mine[len(keep) :]}
            if doomed:
                self._records = [r for r in self._records if r.id not in doomed]
                deleted += len(doomed)
        return deleted

    async def meta(self) -> Mapping[str, str]:
        return dict(self._meta)


def _ts_id(record: base.StoredRecord) -> tuple[int, int]:
    return (record.ts_ns, record.id)


def _key_order(key: base.WorkloadKey) -> tuple[str, str, str]:
    return (key.namespace, key.kind, key.name)


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _same_pod(registered_uid: str, record_uid: str) -> bool:
    return not registered_uid or not record_uid or registered_uid == record_uid


def _drops_match(drops: _Drops, query: base.Query) -> bool:
    return (
        (query.namespace is None or drops.namespace == query.namespace)
        and (query.kind is None or drops.kind == query.kind)
        and (query.workload is None or drops.workload == query.workload)
        and (query.pod is None or drops.pod == query.pod)
        and (not query.containers or drops.container in query.containers)
    )


def _predicate(query: base.Query, *, paging: bool) -> Callable[[base.StoredRecord], bool]:
    filters = base.record_filter(query)

    def matches(r: base.StoredRecord) -> bool:
        if not filters(r):
            return False
        if paging and query.after_id is not None:
            return r.id > query.after_id
        if paging and query.after is not None:
            if query.order == "asc" or query.tail is not None:
                return (r.ts_ns, r.id) > query.after
            return (r.ts_ns, r.id) < query.after
        return True

    return matches
