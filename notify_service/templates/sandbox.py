"""The Jinja sandbox templates are rendered in, and what a source shows before rendering.

An :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with ``StrictUndefined`` and without
autoescaping (none of the outputs is HTML), bounded in what one rendering may cost (issue 17,
finding 5), with the filters ``wechat_time``, ``wechat_date``, ``iso_date`` and ``clip(n)``.
:func:`lint` finds problems visible without rendering; :func:`render_source` renders one source
and reports whatever goes wrong as :class:`SourceFailed`, in Chinese.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any, Final

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from notify_service.templates.wechat_rules import THING_MAX, cut
from wangban.calendar import CHINA_TZ

_MAX_REPEAT: Final = 2000
_MAX_EXPONENT: Final = 100
_MAX_INT_BITS: Final = 4096
MAX_RENDER_STEPS: Final = 2000
"""Loop iterations plus macro and call-block calls in one rendering of one source. The
longest default template takes a handful; nested ``range`` loops would take millions."""
MAX_RANGE: Final = 200
"""Largest ``range(...)`` (the sandbox's own limit is 100 000)."""
MAX_TEXT: Final = 10_000
"""Longest string a template may build (by ``~``, ``+``, a filter or a call) or output. The
longest channel allows 500 characters."""

_STEP: Final = "_wangban_step"
_CONCAT: Final = "_wangban_concat"
_steps: ContextVar[list[int] | None] = ContextVar("template_steps", default=None)


def _step() -> str:
    """Called at the start of every loop iteration, macro and call block (the parser puts the
    call there, see :meth:`_TemplateEnvironment._parse`)."""
    counter = _steps.get()
    if counter is not None:
        counter[0] += 1
        if counter[0] > MAX_RENDER_STEPS:
            raise SecurityError(f"循环或宏的执行次数超过 {MAX_RENDER_STEPS} 次")
    return ""


def _checked_text(value: Any) -> Any:
    if isinstance(value, str | list | tuple) and len(value) > MAX_TEXT:
        raise SecurityError(f"生成的文本长度不能超过 {MAX_TEXT}")
    return value


def _concat(*parts: Any) -> str:
    r"""``a ~ b``, with the length checked before it is built: chained ``{% set %}``\ s of
    ``x ~ x`` double a string with each line."""
    texts = [str(part) for part in parts]
    if sum(len(text) for text in texts) > MAX_TEXT:
        raise SecurityError(f"生成的文本长度不能超过 {MAX_TEXT}")
    return "".join(texts)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SecurityError(f"range 最多 {MAX_RANGE} 个数")
    return numbers


def _bounded_args(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Refuse numbers that size an allocation (``center(10**9)``, ``'x'.ljust(10**9)``)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_TEXT:
            raise SecurityError(f"参数中的数字不能超过 {MAX_TEXT}")


def _bounded_filter(function: Any) -> Any:
    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _bounded_args(args, kwargs)
        return _checked_text(function(*args, **kwargs))

    return bounded


def _bounded_replace(value: Any, old: Any, new: Any, count: Any = None) -> Any:
    text, old_text, new_text = str(value), str(old), str(new)
    if not old_text:
        raise SecurityError("replace 的被替换文本不能为空")
    if len(text) + (len(text) // len(old_text)) * len(new_text) > MAX_TEXT:
        raise SecurityError(f"替换后的长度可能超过 {MAX_TEXT}")
    return _ORIGINAL_REPLACE(value, old, new, count)


class _Counted(NodeTransformer):
    """Puts a step count at the start of every loop body, macro and call block, and turns
    ``a ~ b`` into a length-checked call."""

    def _count(self, node: nodes.Node) -> nodes.Node:
        self.generic_visit(node)
        step = nodes.Output([nodes.Call(nodes.Name(_STEP, "load"), [], [], None, None)])
        node.body = [step, *node.body]  # type: ignore[attr-defined]
        return node

    visit_For = visit_Macro = visit_CallBlock = _count

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.Name(_CONCAT, "load"), list(node.nodes), [], None, None)


class _TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, plus bounds on what one rendering may cost (issue 17, finding 5).

    The sandbox stops escapes (``__class__``, ``__globals__`` …) and, being immutable, stops a
    template from changing the lists and dicts of the context, which are shared (the sample
    contexts are module globals). It does not bound resources: ``'x' * 10**10`` would happily
    allocate and nested loops over ``range(1000)`` run a billion times. So ``*``, ``**``,
    ``%`` and ``+`` are intercepted; every loop iteration, macro and call block counts against
    :data:`MAX_RENDER_STEPS`; ``range`` is limited to :data:`MAX_RANGE` numbers; strings built by
    ``~``, ``+``, filters and calls, and the output, to :data:`MAX_TEXT` characters; numbers that
    size an allocation (``center(10**9)``) are refused, and so are ``str.format`` and the
    ``format`` filter (a width inside the format string). Save and preview render with the same
    limits as sending, so a template over them is refused when it is saved.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        counted = _Counted().visit(tree)
        assert isinstance(counted, nodes.Template)
        return counted

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in ("format", "format_map"):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _bounded_args(args, kwargs)
        return _checked_text(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            # printf formatting takes a width ("%999999999s"); templates never need it.
            raise SecurityError("模板中不能使用字符串 % 格式化")
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"幂运算的指数不能超过 {_MAX_EXPONENT}")
        if operator in ("*", "**") and any(
            isinstance(v, int) and v.bit_length() > _MAX_INT_BITS for v in (left, right)
        ):
            raise SecurityError("模板中的数字过大")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > _MAX_REPEAT
                ):
                    raise SecurityError(f"重复后的长度不能超过 {_MAX_REPEAT}")
        return _checked_text(super().call_binop(context, operator, left, right))


def _finalize(value: Any) -> Any:
    # "reason: None" in a message to a citizen is worse than an empty string; the empty value
    # is then refused where a value is required (every WeChat keyword, every SMS parameter).
    return "" if value is None else value


def _aware_in_china(value: datetime, filter_name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # Guessing the zone of a naive time would shift it by 8 hours one way or the other.
        raise ValueError(f"{filter_name} 需要带时区的日期时间，收到的是不带时区的 {value}")
    return value.astimezone(CHINA_TZ)


def _wechat_time(value: Any) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"wechat_time 需要日期时间（datetime），收到的是 {type(value).__name__}")
    local = _aware_in_china(value, "wechat_time")
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def _as_date(value: Any, filter_name: str) -> date:
    if isinstance(value, datetime):
        return _aware_in_china(value, filter_name).date()
    if isinstance(value, date):
        return value
    raise TypeError(f"{filter_name} 需要日期（date 或 datetime），收到的是 {type(value).__name__}")


def _wechat_date(value: Any) -> str:
    day = _as_date(value, "wechat_date")
    return f"{day.year}年{day.month}月{day.day}日"


def _iso_date(value: Any) -> str:
    return _as_date(value, "iso_date").isoformat()


def _clip(value: Any, length: int = THING_MAX) -> str:
    if not isinstance(length, int) or length < 2:
        raise ValueError("clip 的长度至少为 2")
    return cut("" if value is None else str(value), length)


_ENV: Final = _TemplateEnvironment(
    undefined=StrictUndefined,
    # None of the outputs is HTML: escaping would show "&amp;" to people.
    autoescape=False,
    finalize=_finalize,
    # No trim_blocks: these are short texts with inline {% if %}s, where a newline silently
    # eaten after "{% endif %}" surprises whoever writes the template.
)
_ENV.filters.update(
    wechat_time=_wechat_time, wechat_date=_wechat_date, iso_date=_iso_date, clip=_clip
)
# The format filter takes its width from the format string ("%999999999s"|format(1)).
del _ENV.filters["format"]
_ORIGINAL_REPLACE: Final = _ENV.filters["replace"]
_ENV.filters.update({name: _bounded_filter(f) for name, f in _ENV.filters.items()})
_ENV.filters["replace"] = _bounded_replace
_ENV.globals.update({_STEP: _step, _CONCAT: _concat, "range": _range})

_CONTEXT_NAMES: Final = frozenset(
    {
        "kind",
        "item",
        "application",
        "applicant",
        "at",
        "reason",
        "materials",
        "due_date",
        "tolerated_until",
        "certificate",
        "outcome",
        "rating",
    }
)
_KNOWN_NAMES: Final = _CONTEXT_NAMES | frozenset(_ENV.globals)


@functools.lru_cache(maxsize=1024)
def _compile(source: str) -> Template:
    # Rendering happens once per message; compiling once per distinct source. A syntax error
    # is raised (and not cached) every time, which only costs on broken templates.
    return _ENV.from_string(source)


@functools.lru_cache(maxsize=1024)
def lint(source: str) -> tuple[str, ...]:
    """Problems visible without rendering, including in branches the sample does not take."""
    try:
        tree = _ENV.parse(source)
        _compile(source)
    except TemplateSyntaxError as exc:
        return (_describe(exc),)
    found: list[str] = []
    underscored: set[str] = set()
    unknown = sorted(meta.find_undeclared_variables(tree) - _KNOWN_NAMES)
    if unknown:
        found.append(
            f"引用了未知变量：{'、'.join(unknown)}（可用的变量：{'、'.join(sorted(_CONTEXT_NAMES))}）"
        )
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            name = arg.value if isinstance(arg, nodes.Const) else None
        # The sandbox refuses these at render time too, but only on the branch that runs;
        # nothing legitimate in our context starts with an underscore.
        if isinstance(name, str) and name.startswith("_"):
            underscored.add(name)
    if underscored:
        found.append(f"不能访问以下划线开头的属性：{'、'.join(sorted(underscored))}")
    return tuple(found)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"模板语法错误（第 {exc.lineno} 行）：{exc.message}"
    if isinstance(exc, SecurityError):
        return f"使用了模板沙箱不允许的操作：{exc}"
    if isinstance(exc, UndefinedError):
        return f"引用了不存在的变量或属性：{exc.message}"
    if isinstance(exc, TemplateError):
        return f"模板渲染出错：{exc}"
    if isinstance(exc, RecursionError):
        return "模板渲染出错：递归过深"
    if isinstance(exc, TypeError | ValueError):
        # Our filters raise these with Chinese messages meant for the template's author.
        return f"模板渲染出错：{exc}"
    return f"模板渲染出错（{type(exc).__name__}）：{exc}"


class SourceFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def render_source(source: str, context: Mapping[str, Any]) -> str:
    token = _steps.set([0])
    try:
        parts: list[str] = []
        size = 0
        for part in _compile(source).generate(context):
            size += len(part)
            if size > MAX_TEXT:
                raise SecurityError(f"输出长度不能超过 {MAX_TEXT}")
            parts.append(part)
        return "".join(parts).strip()
    except Exception as exc:
        # The source is a program an administrator wrote: whatever it raises (a TypeError in a
        # filter, a SecurityError, a RecursionError from a macro) is a template problem to
        # report against its field, never a crash of the sender.
        raise SourceFailed(_describe(exc)) from exc
    finally:
        _steps.reset(token)
