"""Model-based test of the tailer: random write / rotate / compress / copytruncate / delete /
crash sequences, checked against what must be delivered (each line exactly once).

Runs in-process with a fake clock: the real `Tailer` and `Checkpoints` over real files, and a
server model with the real high-water-mark semantics that acknowledges when the sequence says so.
A crash drops everything not acknowledged and everything not saved, like SIGKILL.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tailrace.agent import checkpoints, filesource, metrics, tailer
from tailrace.wire import codec
from tests.agent import pods


class ServerModel:
    def __init__(self) -> None:
        self.high_water: dict[str, int] = {}
        self.stored: list[str] = []

    def push(self, sealed: filesource.Sealed) -> int:
        mark = self.high_water.get(sealed.key, 0)
        for record in codec.iter_records(sealed.batch):
            if record.end_offset > mark:
                self.stored.append(record.message)
        top = max([mark, sealed.batch.covered_offset, *sealed.batch.end_offsets])
        self.high_water[sealed.key] = top
        return top


class Agent:
    def __init__(self, root: Path, server: ServerModel) -> None:
        self.root = root
        self.server = server
        self.state = checkpoints.Checkpoints(root / "state")
        self.state.load()
        self.outbox: list[filesource.Sealed] = []
        self.tailer = tailer.Tailer(
            root / "pods",
            filesource.Config(node="n", read_chunk_bytes=4096),
            self.state,
            self.outbox.append,
            metrics.Metrics(CollectorRegistry()),
            batch_max_wait_s=0.0,
            retire_after_s=1.0,
        )

    def step(self, now: float) -> None:
        self.tailer.discover(now)
        while self.tailer.pump(now):
            pass
        self.tailer.housekeeping(now)
        self.state.save(now)

    def ack(self) -> None:
        for sealed in self.outbox:
            self.state.acked(sealed.key, self.server.push(sealed))
        self.outbox.clear()

    def crash(self) -> None:
        for tracked in list(self.tailer.files.values()):
            tracked.source.close()


def run_sequence(root: Path, seed: int, operations: int) -> None:
    rng = random.Random(seed)
    server = ServerModel()
    agent = Agent(root, server)
    containers = [pods.Container(root / "pods", pod=f"p{i}", uid=f"u{i}") for i in range(2)]
    written: list[str] = []
    rotated: dict[int, list[Path]] = {0: [], 1: []}
    now = 0.0
    n = 0
    stamp = 0

    def catch_up() -> None:
        nonlocal now
        for _ in range(4):
            now += 1.5
            agent.step(now)
            agent.ack()
            agent.step(now)
            agent.ack()

    for _ in range(operations):
        op = rng.choice(
            [
                "write",
                "write",
                "write",
                "split",
                "step",
                "step",
                "ack",
                "rotate",
                "compress",
                "copytruncate",
                "delete",
                "crash",
            ]
        )
        index = rng.randrange(2)
        container = containers[index]
        if op == "write":
            count = rng.randint(1, 40)
            written += container.write_lines(n, count, prefix=f"m{seed}")
            n += count
        elif op == "split":
            written += container.write_split_lines(n, 5, 2, prefix=f"s{seed}")
            n += 5
        elif op == "step":
            now += rng.choice([0.1, 0.5, 2.0])
            agent.step(now)
        elif op == "ack":
            agent.ack()
        elif op == "rotate" and container.path.exists():
            agent.step(now)  # kubelet rotates files the agent has seen: it is not that fast
            stamp += 1
            rotated[index].append(container.rotate(f"20240101-{stamp:06d}"))
        elif op == "compress" and rotated[index]:
            path = rotated[index][-1]
            if path.suffix != ".gz":
                agent.step(now)
                rotated[index][-1] = container.compress(path)
        elif op == "copytruncate" and container.path.exists() and container.path.stat().st_size:
            agent.step(now)
            stamp += 1
            rotated[index].append(container.copytruncate(f"20240101-{stamp:06d}"))
        elif op == "delete" and rotated[index]:
            catch_up()  # kubelet deletes old rotations only; by then the agent has read them
            rotated[index].pop(0).unlink()
        elif op == "crash":
            if rng.random() < 0.5:
                agent.state.save(now, force=True)
            agent.crash()
            agent = Agent(root, server)
    catch_up()
    stored = Counter(server.stored)
    duplicates = {m: c for m, c in stored.items() if c > 1}
    missing = [m for m in written if m not in stored]
    assert not duplicates, f"stored twice: {sorted(duplicates)[:5]}"
    assert not missing, f"lost {len(missing)}: {missing[:5]}"
    assert sorted(server.stored) == sorted(written)


@pytest.mark.parametrize("seed", range(12))
def test_random_file_operations_deliver_every_line_exactly_once(tmp_path: Path, seed: int) -> None:
    run_sequence(tmp_path, seed, operations=80)
