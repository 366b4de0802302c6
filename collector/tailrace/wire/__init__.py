"""The ingest wire contract (tailrace.v1) shared by the agent and the server."""

from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc

__all__ = ["codec", "ingest_pb2", "ingest_pb2_grpc"]
