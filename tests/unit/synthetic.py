"""Synthetic personal data for tests: well-formed, never a real person's."""

from __future__ import annotations

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def resident_id(*, region: str = "110101", birth: str = "19900307", sequence: str = "999") -> str:
    """An 18-character resident ID number with a valid GB 11643 check character.

    Sequence 999 with a made-up birth date keeps it well away from real allocations while
    still exercising the full pattern (including, for some inputs, an ``X`` check char).
    """
    body = region + birth + sequence
    assert len(body) == 17 and body.isdigit()
    total = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True))
    return body + _CHECK[total % 11]


def resident_id_ending_in_x() -> str:
    for sequence in range(900, 1000):
        value = resident_id(sequence=str(sequence))
        if value.endswith("X"):
            return value
    raise AssertionError("no sequence gives an X check character")  # pragma: no cover


PHONE = "13800138000"
"""The number every Chinese manual uses as an example."""
