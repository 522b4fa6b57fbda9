"""Contracts of the catalog service, one module per version."""
