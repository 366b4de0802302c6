"""The Tailrace server: gRPC ingest, storage, the HTTP APIs, live tail and metrics."""
