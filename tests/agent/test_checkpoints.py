"""The checkpoint file: versioned, atomic, advanced only by acknowledgements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailrace.agent import checkpoints


def entry(key: str = "n/1:2:0") -> checkpoints.Entry:
    return checkpoints.Entry(key, "/p/ns_pod_uid/c/0.log", 1, 2, 0, head=b"abc".hex())


def test_offsets_move_only_when_the_server_acknowledges(tmp_path: Path) -> None:
    state = checkpoints.Checkpoints(tmp_path)
    state.track(entry())
    state.sealed("n/1:2:0", covered=100, resume=100)
    state.sealed("n/1:2:0", covered=250, resume=180)  # a partial line pending from 180
    assert (state.get("n/1:2:0").resume, state.get("n/1:2:0").acked) == (0, 0)  # type: ignore[union-attr]
    state.acked("n/1:2:0", 100)
    assert (state.get("n/1:2:0").resume, state.get("n/1:2:0").acked) == (100, 100)  # type: ignore[union-attr]
    state.acked("n/1:2:0", 250)
    assert (state.get("n/1:2:0").resume, state.get("n/1:2:0").acked) == (180, 250)  # type: ignore[union-attr]


def test_saved_state_is_read_back_by_the_next_process(tmp_path: Path) -> None:
    state = checkpoints.Checkpoints(tmp_path)
    state.track(entry())
    state.sealed("n/1:2:0", 10, 10)
    state.acked("n/1:2:0", 10)
    assert state.save(force=True)
    again = checkpoints.Checkpoints(tmp_path)
    again.load()
    loaded = again.get("n/1:2:0")
    assert loaded is not None
    assert (loaded.resume, loaded.acked, loaded.head, loaded.done) == (10, 10, "616263", False)
    document = json.loads((tmp_path / "checkpoints.json").read_text())
    assert document["version"] == checkpoints.VERSION
    assert not list(tmp_path.glob(".*.tmp")), "no temp file left behind"


def test_a_finished_source_is_done_once_everything_is_acknowledged(tmp_path: Path) -> None:
    state = checkpoints.Checkpoints(tmp_path)
    state.track(entry())
    state.sealed("n/1:2:0", 50, 50)
    state.finished("n/1:2:0", 50)
    assert not state.get("n/1:2:0").done  # type: ignore[union-attr]
    state.acked("n/1:2:0", 50)
    assert state.get("n/1:2:0").done  # type: ignore[union-attr]


def test_a_forgotten_inode_comes_back_with_a_higher_generation(tmp_path: Path) -> None:
    state = checkpoints.Checkpoints(tmp_path)
    state.track(entry())
    assert state.generation_floor(1, 2) == 0
    state.forget({"n/1:2:0"})
    assert state.generation_floor(1, 2) == 1
    state.save(force=True)
    again = checkpoints.Checkpoints(tmp_path)
    again.load()
    assert again.generation_floor(1, 2) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b'{"version": 99, "sources": []}', "unknown checkpoint version 99"),
        (b'{"version": 1, "sources": {}}', "'sources' is not a list"),
        (b'{"version": 1, "sources": [{"key": 5}]}', "bad source entry"),
    ],
)
def test_an_unreadable_checkpoint_file_is_a_precise_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "checkpoints.json").write_bytes(content)
    with pytest.raises(checkpoints.CheckpointError, match=message):
        checkpoints.Checkpoints(tmp_path).load()
