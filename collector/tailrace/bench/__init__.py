"""Benchmarks behind `tailrace bench`: they print figures, they never assert."""
