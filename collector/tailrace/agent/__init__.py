"""The collector agent: tails kubelet's container log files and forwards them over gRPC."""
