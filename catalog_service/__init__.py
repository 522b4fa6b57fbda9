"""Wangban catalog service.

The standardised catalogue of service items (实施清单) and bundles (一件事一次办).
"""
