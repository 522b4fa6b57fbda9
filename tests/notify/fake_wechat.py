"""The fake WeChat moved to :mod:`tests.fakes.wechat` (the gateway uses it too)."""

from tests.fakes.wechat import FakeWeChat, serve_fake_wechat

__all__ = ["FakeWeChat", "serve_fake_wechat"]
