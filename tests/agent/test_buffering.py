"""The send buffer: memory first, then the on-disk spool, then backpressure; order always kept."""

from __future__ import annotations

import threading
from pathlib import Path

from tailrace.agent import filesource, spool
from tailrace.wire.v1 import ingest_pb2


def sealed(n: int, size: int = 100) -> filesource.Sealed:
    batch = ingest_pb2.Batch(text=b"x" * (size - 4), covered_offset=n + 1)  # ~4 bytes framing
    return filesource.Sealed(f"k/{n}", batch.SerializeToString(), n, n, 1)


def drain(buffer: spool.Buffer) -> list[int]:
    out = []
    while True:
        items = buffer.peek(1 << 20, timeout=0.01)
        if not items:
            return out
        out += [item.covered_offset for item in items]
        buffer.remove(len(items))


def test_batches_spill_to_the_spool_when_memory_is_full_and_leave_in_order(
    tmp_path: Path,
) -> None:
    buffer = spool.Buffer(memory_bytes=250, spool_dir=tmp_path / "spool", spool_bytes=10_000)
    items = [sealed(n) for n in range(10)]
    for item in items:
        assert buffer.put(item, timeout=0)
    assert buffer.memory_bytes == items[0].size + items[1].size
    assert buffer.spool_bytes == sum(item.size for item in items[2:])
    assert len(list((tmp_path / "spool").iterdir())) == 8
    assert drain(buffer) == list(range(10))
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_batch_read_back_from_the_spool_is_the_batch_that_was_spooled(tmp_path: Path) -> None:
    buffer = spool.Buffer(memory_bytes=100, spool_dir=tmp_path / "spool", spool_bytes=10_000)
    buffer.put(sealed(1), timeout=0)
    original = sealed(2, 500)
    buffer.put(original, timeout=0)
    buffer.remove(len(buffer.peek(100, 0)))
    [back] = buffer.peek(1 << 20, 0)
    assert back.batch == original.batch
    assert (back.key, back.covered_offset, back.resume_offset, back.records) == ("k/2", 2, 2, 1)


def test_newer_batches_queue_behind_spooled_ones_even_when_memory_frees_up(
    tmp_path: Path,
) -> None:
    buffer = spool.Buffer(memory_bytes=100, spool_dir=tmp_path / "spool", spool_bytes=10_000)
    buffer.put(sealed(0), timeout=0)
    buffer.put(sealed(1), timeout=0)  # spooled
    buffer.remove(1)  # memory is free again, the spool is not empty
    buffer.put(sealed(2), timeout=0)
    assert drain(buffer) == [1, 2]


def test_a_full_buffer_blocks_the_reader_until_the_server_catches_up(tmp_path: Path) -> None:
    buffer = spool.Buffer(memory_bytes=100, spool_dir=tmp_path / "spool", spool_bytes=100)
    assert buffer.put(sealed(0), timeout=0)
    assert buffer.put(sealed(1), timeout=0)
    assert not buffer.put(sealed(2), timeout=0.05)  # backpressure: the caller stops reading
    result: list[bool] = []
    blocked = threading.Thread(target=lambda: result.append(buffer.put(sealed(2), timeout=10)))
    blocked.start()
    buffer.remove(len(buffer.peek(100, 0)))
    blocked.join(10)
    assert result == [True]
    assert drain(buffer) == [1, 2]


def test_a_paced_batch_waits_for_room_in_memory_instead_of_spooling(tmp_path: Path) -> None:
    buffer = spool.Buffer(memory_bytes=250, spool_dir=tmp_path / "spool", spool_bytes=10_000)
    assert buffer.put(sealed(0), timeout=0, spill=False)
    assert buffer.put(sealed(1), timeout=0, spill=False)
    assert not buffer.put(sealed(2), timeout=0.05, spill=False)  # memory full: wait, not spool
    assert buffer.spool_bytes == 0
    assert list((tmp_path / "spool").iterdir()) == []
    result: list[bool] = []
    waiting = threading.Thread(
        target=lambda: result.append(buffer.put(sealed(2), timeout=10, spill=False))
    )
    waiting.start()
    buffer.remove(len(buffer.peek(100, 0)))  # the server acknowledged one: room again
    waiting.join(10)
    assert result == [True]
    assert buffer.spool_bytes == 0
    assert drain(buffer) == [1, 2]


def test_a_paced_batch_waits_until_the_spool_is_empty_to_keep_the_order(tmp_path: Path) -> None:
    buffer = spool.Buffer(memory_bytes=100, spool_dir=tmp_path / "spool", spool_bytes=10_000)
    buffer.put(sealed(0), timeout=0)
    buffer.put(sealed(1), timeout=0)  # spooled (an outage, say)
    buffer.remove(1)  # memory free again, refilled from the spool's head
    buffer.put(sealed(2), timeout=0)  # spooled behind it
    assert not buffer.put(sealed(3), timeout=0.05, spill=False)  # the spool is not empty yet
    buffer.remove(1)
    assert not buffer.put(sealed(3), timeout=0.05, spill=False)  # 2 is in memory: no room
    buffer.remove(1)
    assert buffer.put(sealed(3), timeout=0, spill=False)
    assert buffer.spool_bytes == 0
    assert drain(buffer) == [3]


def test_the_spool_left_by_a_previous_process_is_emptied_on_start(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "000000000001.batch").write_bytes(b"stale")
    buffer = spool.Buffer(memory_bytes=100, spool_dir=folder, spool_bytes=100)
    assert list(folder.iterdir()) == []
    assert len(buffer) == 0
