"""The bulk path for whole CRI lines gives exactly what the general path gives, byte for byte.

Every generated file is read twice by a FileSource, once with the bulk path and once with every
line sent through the general path (parser lookup, merger, per-record enrichment), and the
serialized batches, counters and offsets must be identical. The lines mix what the bulk path takes
with everything it must leave alone: partials, malformed headers, other timestamp forms, CRLF,
invalid UTF-8, oversize lines, and JSON with odd field types, escapes and nesting.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tailrace.agent import filesource
from tailrace.bench import agent as bench
from tailrace.settings import LinePolicy
from tests.agent import linegen, pipeline
from tests.agent.pods import cri_ts

configs = st.builds(
    filesource.Config,
    node=st.just("n"),
    line_policy=st.builds(
        LinePolicy,
        st.sampled_from([1024, 16_384]),
        st.sampled_from(["truncate", "drop", "split"]),
    ),
    batch_max_records=st.just(1_000_000),
    batch_max_bytes=st.just(1 << 40),
    json_level_field=st.sampled_from(["level", "severity"]),
    json_execution_field=st.sampled_from(["executionId", "reqId"]),
    execution_id=st.sampled_from(["", "from-label"]),
)


def both_paths(
    data: bytes, config: filesource.Config, chunk: int, finish: bool
) -> tuple[pipeline.Outcome, pipeline.Outcome]:
    with tempfile.TemporaryDirectory() as temp:
        config.bulk = True
        fast = pipeline.outcome(Path(temp), data, config, chunk, finish)
        config.bulk = False
        general = pipeline.outcome(Path(temp), data, config, chunk, finish)
    return fast, general


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=linegen.log_file(),
    config=configs,
    chunk=st.sampled_from([0, 0, 7, 100, 1000, 4096]),
    finish=st.booleans(),
)
@example(
    data=cri_ts(0).encode() + b" stdout F [warning]: disk full\n",
    config=filesource.Config(),
    chunk=0,
    finish=False,
)
@example(
    data=cri_ts(0).encode()
    + b" stdout F ok\n"
    + cri_ts(1).encode().replace(b"T", b" ")
    + b" stdout F x\n",
    config=filesource.Config(),
    chunk=0,
    finish=False,
)
def test_bulk_and_general_paths_give_identical_batches(
    data: bytes, config: filesource.Config, chunk: int, finish: bool
) -> None:
    fast, general = both_paths(data, config, chunk, finish)
    assert fast == general


def test_the_bench_corpus_reads_the_same_on_both_paths() -> None:
    rng = random.Random(7)
    lines = [
        f"{cri_ts(i)} {rng.choice(['stdout', 'stdout', 'stderr'])} F ".encode()
        + bench._short_content(rng, i, rng.randint(150, 264)).encode()
        for i in range(3000)
    ]
    data = b"\n".join(lines) + b"\n"
    for label in ("", "from-label"):
        fast, general = both_paths(data, filesource.Config(execution_id=label), 0, False)
        assert fast == general
        assert fast.counts[0] == ("kept", 3000)
