"""Contracts of the intake service, one module per version."""
