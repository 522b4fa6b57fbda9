"""通办: how far a window's reach goes for an item decided elsewhere."""

from __future__ import annotations

from collections.abc import Mapping

from intake_service.applications.creation import Channel
from intake_service.applications.errors import ScopeNotAllowed
from intake_service.models import ItemVersionCopy

SCOPE_PREFIX: Mapping[str, int | None] = {
    "district": None,  # the item's own region (and the towns within it)
    "city": 4,  # 全城通办: any window of the same city
    "cross_city": 2,  # 跨城通办: any window of the same province
    "cross_province": 0,  # 跨省通办: any window
}


def check_window_scope(item: ItemVersionCopy, channel: Channel) -> None:
    """通办: a window may accept an item decided elsewhere only as far as the item's scope
    reaches; a district-only item only within its own region."""
    if channel.name != "window" or channel.region is None:
        return
    digits = SCOPE_PREFIX.get(item.scope)
    if digits is None:
        allowed = channel.region.startswith(item.region_code)
    else:
        allowed = channel.region[:digits] == item.region_code[:digits]
    if not allowed:
        raise ScopeNotAllowed(
            f"「{item.name}」不在本窗口（{channel.region}）的通办范围内，"
            f"请到 {item.region_code} 辖区的窗口办理"
        )
