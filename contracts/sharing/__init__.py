"""Contracts of the sharing service, one module per version."""
