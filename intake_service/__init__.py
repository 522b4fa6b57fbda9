"""Wangban intake service.

Applications from draft to result: 容缺受理, bundles, window intake (全城通办), 好差评.
"""
