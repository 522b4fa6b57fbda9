"""Wangban approval service.

秒批 automatic approval and the manual workflow on working-day deadlines.
"""
