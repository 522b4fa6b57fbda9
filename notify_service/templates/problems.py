"""What is wrong with a template, per field: :class:`TemplateInvalid` lists every problem
when a template is saved or previewed; :class:`RenderedValueInvalid` names the first one when a
message is sent (a permanent failure: the same message would fail again)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

from wangban.errors import ValidationFailed


@dataclass(frozen=True)
class FieldProblem:
    field: str
    """``thing1`` (a WeChat keyword), ``page``, ``params.<name>`` or ``text`` (SMS),
    ``title`` or ``body`` (inbox); for a malformed body, the path of the field in it."""
    message: str
    """Chinese, naming the field and the rule."""


class TemplateInvalid(ValidationFailed):
    type_slug = "template-invalid"
    title = "通知模板有误"

    SHOWN: ClassVar[int] = 3

    @classmethod
    def of(cls, problems: Sequence[FieldProblem]) -> TemplateInvalid:
        shown = "；".join(p.message for p in problems[: cls.SHOWN])
        more = " 等" if len(problems) > cls.SHOWN else ""
        return cls(
            f"模板有 {len(problems)} 处问题：{shown}{more}",
            extra={"problems": [asdict(p) for p in problems]},
        )

    @property
    def problems(self) -> list[FieldProblem]:
        return [FieldProblem(**p) for p in self.extra.get("problems", [])]


class RenderedValueInvalid(Exception):
    """A message that cannot be sent as rendered; retrying would fail the same way."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
