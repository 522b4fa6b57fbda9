"""Wangban notify service.

WeChat subscription messages, SMS and the in-app inbox.
"""
