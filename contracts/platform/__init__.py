"""Contracts of the platform kit, one module per version."""
