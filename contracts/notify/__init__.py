"""Contracts of the notify service, one module per version."""
