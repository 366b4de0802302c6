"""The checked-in gRPC stubs are exactly what the pinned grpcio-tools makes of ingest.proto."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIRE = Path("tailrace/wire/v1")
GENERATED = ("ingest_pb2.py", "ingest_pb2.pyi", "ingest_pb2_grpc.py")


def test_generated_stubs_match_the_proto(tmp_path: Path) -> None:
    (tmp_path / WIRE).mkdir(parents=True)
    shutil.copy(ROOT / "collector" / WIRE / "ingest.proto", tmp_path / WIRE / "ingest.proto")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(tmp_path / WIRE / "ingest.proto"),
        ],
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / WIRE / name).read_text()
        checked_in = (ROOT / "collector" / WIRE / name).read_text()
        assert fresh == checked_in, f"{name} drifted from ingest.proto: run scripts/gen-proto"


def test_columnar_batch_round_trips_through_the_codec() -> None:
    from tailrace import records
    from tailrace.wire import codec

    source = records.SourceInfo(key="n/1:2:0", namespace="ns", pod="p", pod_uid="u", container="c")
    builder = codec.BatchBuilder(source)
    originals = [
        records.LogRecord(1, "stdout", "INFO", "héllo", 10),
        records.LogRecord(
            2,
            "stderr",
            "ERROR",
            "boom",
            20,
            flags=records.FLAG_TRUNCATED,
            execution_id="e1",
            attrs={"status": 500},
        ),
    ]
    for rec in originals:
        builder.add_record(rec)
    batch = builder.build()
    wire_bytes = batch.SerializeToString()
    from tailrace.wire.v1 import ingest_pb2

    decoded = ingest_pb2.Batch.FromString(wire_bytes)
    codec.validate(decoded)
    assert list(codec.iter_records(decoded)) == originals
    assert decoded.covered_offset == 20


def test_batch_with_disagreeing_columns_is_rejected_precisely() -> None:
    import pytest

    from tailrace.wire import codec
    from tailrace.wire.v1 import ingest_pb2

    batch = ingest_pb2.Batch(source=ingest_pb2.Source(key="k"), streams=b"o", levels=b"\x02")
    batch.ts_ns.append(1)
    with pytest.raises(codec.MalformedBatch, match="column lengths"):
        codec.validate(batch)
