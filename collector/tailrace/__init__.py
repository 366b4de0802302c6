"""Tailrace: Kubernetes log collection for serverless functions and streaming pipelines."""

__version__ = "0.1.0"
__all__ = ["__version__"]
