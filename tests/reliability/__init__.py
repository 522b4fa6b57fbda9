"""Reliability scenarios (issue 10): faults injected on purpose, nothing lost or applied twice."""
