"""What one rendering of a notification template may cost is bounded (issue 17, finding 5):
nested loops, exponential macros, doubling strings and allocation-sized numbers are refused
when the template is saved or previewed, naming the field. Counted, never timed."""

from __future__ import annotations

import pytest

from notify_service import templates as t
from notify_service.templates import (
    SAMPLE_CONTEXTS,
    InboxTemplateBody,
    NotificationKind,
    TemplateInvalid,
)

ACCEPTED = NotificationKind.APPLICATION_ACCEPTED
NESTED_RANGES = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}正文"
)


def _problems(body: str, *, how: str = "save") -> list[t.FieldProblem]:
    template = InboxTemplateBody(title="标题", body=body)
    with pytest.raises(TemplateInvalid) as refused:
        if how == "save":
            t.validate_template(
                kind=ACCEPTED,
                channel="inbox",
                body=template,
                sms_sign_name="签名",
                sms_max_chars=210,
            )
        else:
            t.preview(
                kind=ACCEPTED,
                channel="inbox",
                body=template,
                context=SAMPLE_CONTEXTS[ACCEPTED],
                sms_sign_name="签名",
                sms_max_chars=210,
            )
    return refused.value.problems


@pytest.mark.parametrize("how", ["save", "preview"])
def test_nested_range_loops_are_refused_at_save_and_preview(how: str) -> None:
    [problem] = _problems(NESTED_RANGES, how=how)
    assert problem.field == "body" and f"range 最多 {t.MAX_RANGE} 个数" in problem.message


def test_loops_within_the_range_limit_still_count_their_iterations() -> None:
    body = (
        "{% for a in range(100) %}{% for b in range(100) %}{% endfor %}{% endfor %}"
        "{% for m in materials %}{{ m }}{% endfor %}"
    )
    [problem] = _problems(body)
    assert f"执行次数超过 {t.MAX_RENDER_STEPS} 次" in problem.message
    # Loops that fit are fine (the sample has two materials).
    t.validate_template(
        kind=NotificationKind.APPLICATION_CORRECTION_REQUESTED,
        channel="inbox",
        body=InboxTemplateBody(
            title="标题",
            body="{% for a in range(10) %}{{ a }}{% endfor %}"
            "{% for m in materials %}{{ m }}{% endfor %}",
        ),
        sms_sign_name="签名",
        sms_max_chars=210,
    )


def test_an_exponential_macro_is_stopped() -> None:
    body = (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(30) }}"
    )
    [problem] = _problems(body)
    assert f"执行次数超过 {t.MAX_RENDER_STEPS} 次" in problem.message


@pytest.mark.parametrize(
    "body",
    [
        # Each line doubles the string: 2**30 characters by the last.
        "{% set a = 'xxxxxxxxxx' %}"
        + "".join(
            f"{{% set a{n} = a{n - 1 if n else ''} ~ a{n - 1 if n else ''} %}}" for n in range(30)
        )
        + "{{ a29|length }}",
        "{% set a = 'xxxxxxxxxx' %}"
        + "".join(
            f"{{% set a{n} = a{n - 1 if n else ''} + a{n - 1 if n else ''} %}}" for n in range(30)
        )
        + "{{ a29|length }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ 'x'.ljust(1000000000) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '%999999999s'|format(1) }}",
        "{{ range(100)|join('x' * 1000) }}",
        "{{ ('abcdefghij' * 200)|replace('a', 'b' * 1000) }}",
    ],
)
def test_strings_cannot_grow_without_bound(body: str) -> None:
    [problem] = _problems(body)
    assert problem.field == "body"


def test_the_default_templates_are_within_every_limit() -> None:
    for kind, channel, body in t.DEFAULT_TEMPLATES:
        t.validate_template(
            kind=kind, channel=channel, body=body, sms_sign_name="签名", sms_max_chars=210
        )
