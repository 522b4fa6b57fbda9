"""Wangban gateway.

The mini-program and staff-console API: the platform's only public door (粤省事-style).
"""
