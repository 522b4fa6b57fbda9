"""Contracts of the gateway service, one module per version."""
