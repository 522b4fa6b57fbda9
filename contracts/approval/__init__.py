"""Contracts of the approval service, one module per version."""
