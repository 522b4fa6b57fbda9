"""The 秒批 engine: an item's CEL rules evaluated against the form, the applicant and the data
shared by other departments. Pure: no database, no HTTP, no clock but the one that times it.

Rules come from the catalogue (``catalog_service.schemas.Rule``: ``name``, ``expression``,
Chinese ``message``, ``needs`` datasets, ``refer``). What a rule sees:

``form``
    the application form, as submitted;
``applicant``
    ``{kind, age, region_code, assurance}``; a fact we do not know (a company's age) is
    absent, so ``has(applicant.age)`` is false and reading it is an error;
``shared``
    dataset code → the record found (only the fields asked for); a dataset without a record
    (none found, or its provider unavailable) is an empty map, so ``has(shared["x"].f)`` is
    false and ``shared["x"].f`` is an error;
``today``
    the China date, ``"YYYY-MM-DD"``: dates are compared as ISO strings throughout.

Outcome, in this order of precedence:

1. **deny** when some rule that is not a ``refer`` rule is false. Such a rule was evaluated on
   data that is present (a rule missing any of its datasets is never evaluated), so the
   refusal is certain whatever else is missing or unclear; the reason is the message of the
   first such rule in the item's order.
2. **refer** (转人工) when nothing denies but some rule was skipped for missing data (a needed
   dataset had no record or its provider was unavailable), raised an error at run time, did
   not answer a boolean, or is a ``refer`` rule that is false. The machine never denies
   because data is missing or a rule is broken: a person decides.
3. **approve** when every rule is true. A rule set without rules refers: an empty list of
   checks must not pass everything.

Every rule is evaluated (or skipped) even after a failure, so the explanation lists them all.

Cost. A rule over one of the static limits of :mod:`wangban.cel_limits` (the catalogue refuses
them at save; one saved before the limits existed can still arrive) is not evaluated, and an
evaluation that passes its step budget (:data:`~wangban.cel_limits.STEP_BUDGET_PER_RULE`, and
:data:`~wangban.cel_limits.STEP_BUDGET_PER_RULE_SET` for all the rules of one application) is
stopped where it is: either is an ``error`` result, so the case is referred to a person, never
approved or denied by a rule that could not finish. :func:`dry_run` refuses both instead,
naming the rule, so its author sees why before publishing.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Final, Literal, TypeAlias, cast

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import base_functions

from wangban import cel_limits

__all__ = [
    "NOT_FOUND",
    "UNAVAILABLE",
    "ApplicantFacts",
    "CompiledRule",
    "CompiledRuleSet",
    "DataStatus",
    "Evaluation",
    "NeedStatus",
    "Outcome",
    "RuleResult",
    "RuleSetInvalid",
    "SharedData",
    "build_context",
    "compile_rule_set",
    "dry_run",
    "evaluate",
    "needs_status_of",
]

log = logging.getLogger(__name__)

Outcome: TypeAlias = Literal["approve", "deny", "refer"]
NeedStatus: TypeAlias = Literal["found", "not_found", "unavailable"]
RuleOutcome: TypeAlias = Literal["true", "false", "error", "skipped"]


class DataStatus(enum.Enum):
    """Why a needed dataset has no record to show the rules."""

    NOT_FOUND = "not_found"
    """The department answered: it holds no record of the subject."""
    UNAVAILABLE = "unavailable"
    """The department could not be asked (outage, timeout, circuit open, no grant)."""


NOT_FOUND: Final = DataStatus.NOT_FOUND
UNAVAILABLE: Final = DataStatus.UNAVAILABLE

SharedData: TypeAlias = Mapping[str, Any] | Literal[DataStatus.NOT_FOUND, DataStatus.UNAVAILABLE]
"""One dataset's answer: the record (field → value), or why there is none."""

Context: TypeAlias = dict[str, celtypes.Value]
"""The CEL activation :func:`build_context` makes and :func:`evaluate` reads."""


class RuleSetInvalid(ValueError):
    """A rule set that cannot be compiled: malformed, or a CEL expression that does not parse.
    The catalogue refuses such content at save time; meeting it here is a configuration
    error, never the applicant's problem."""


# --- compiling ---------------------------------------------------------------------------------

# One environment, as the catalogue's syntax check uses. The interpreted runner, not celpy's
# CompiledRunner: that one is about five times faster but, in cel-python 0.5, parses with
# whichever tree class the first Environment of the process chose (ours and the catalogue's
# choose plain lark trees, and then every transpiled program fails), runs through module
# globals (two threads evaluating at once would read each other's data) and logs every CEL
# error at ERROR level.
_ENV: Final = celpy.Environment()
_COMPILE_LOCK: Final = threading.Lock()  # the parser keeps the text being parsed on itself

# `shared["gongan.huji"]`, with either quote, and the field read from it, if any:
# `.registered_region` or `["registered_region"]`.
_SHARED_READ: Final = re.compile(
    r"""\bshared\s*\[\s*(?:"([^"\\]+)"|'([^'\\]+)')\s*\]"""
    r"""(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)|\s*\[\s*(?:"([^"\\]+)"|'([^'\\]+)')\s*\])?"""
)


@dataclass(frozen=True, kw_only=True)
class CompiledRule:
    name: str
    expression: str
    message: str
    refer: bool
    declared_needs: tuple[str, ...]
    needs: tuple[str, ...]
    """Declared datasets plus every dataset the expression reads, in order of first mention."""
    ast: celpy.Expression = field(repr=False, compare=False)
    limit_problem: str | None = None
    """Why the rule is over a static limit (:mod:`wangban.cel_limits`), in Chinese: such a
    rule is never evaluated."""


@dataclass(frozen=True, kw_only=True)
class CompiledRuleSet:
    rules: tuple[CompiledRule, ...]
    digest: str
    """SHA-256 of the rule set's canonical JSON: which rules decided, for the record."""
    datasets: tuple[str, ...]
    """Every dataset some rule needs: what to ask the sharing service for."""
    fields_read: Mapping[str, frozenset[str]]
    """Dataset → the fields the expressions read from it (``.field`` or ``["field"]``), so
    the lookup asks for those only (data minimisation)."""
    undeclared_needs: Mapping[str, tuple[str, ...]]
    """Rule name → datasets its expression reads without listing them in ``needs``. They are
    treated as needed all the same; the catalogue should warn the rule's author."""


def compile_rule_set(rules: Sequence[Mapping[str, Any]]) -> CompiledRuleSet:
    """Parse an item's rules once. Equal rule sets (by content) give the same object, so the
    hot path pays a canonical dump and a dictionary lookup, never a parse."""
    return _compile_canonical(_canonical(rules))


def _canonical(rules: Sequence[Mapping[str, Any]]) -> str:
    normalised: list[dict[str, Any]] = []
    for index, rule in enumerate(rules):
        name, expression, message = rule.get("name"), rule.get("expression"), rule.get("message")
        needs, refer = rule.get("needs", []), rule.get("refer", False)
        if not isinstance(name, str) or not name:
            raise RuleSetInvalid(f"第{index + 1}条规则缺少名称")
        if not isinstance(expression, str) or not expression.strip():
            raise RuleSetInvalid(f"规则“{name}”缺少表达式")
        if not isinstance(message, str) or not message:
            raise RuleSetInvalid(f"规则“{name}”缺少不通过时的提示")
        if not isinstance(needs, list | tuple) or not all(isinstance(n, str) for n in needs):
            raise RuleSetInvalid(f"规则“{name}”的数据集列表无效")
        if not isinstance(refer, bool):
            raise RuleSetInvalid(f"规则“{name}”的转人工标记无效")
        normalised.append(
            {
                "name": name,
                "expression": expression,
                "message": message,
                "needs": list(needs),
                "refer": refer,
            }
        )
    names = [rule["name"] for rule in normalised]
    if len(names) != len(set(names)):
        raise RuleSetInvalid("秒批规则名称不能重复")
    return json.dumps(normalised, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=1024)
def _compile_canonical(canonical: str) -> CompiledRuleSet:
    compiled: list[CompiledRule] = []
    fields_read: dict[str, set[str]] = {}
    undeclared: dict[str, tuple[str, ...]] = {}
    for rule in json.loads(canonical):
        try:
            with _COMPILE_LOCK:
                ast = _ENV.compile(rule["expression"])
        except Exception as exc:  # celpy raises its own parse errors; any is a bad rule
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RuleSetInvalid(f"规则“{rule['name']}”的表达式语法错误：{first_line}") from exc
        limit_problem = cel_limits.static_limit_problem(rule["expression"], ast)
        read = _datasets_read(rule["expression"], fields_read)
        declared = tuple(dict.fromkeys(rule["needs"]))
        extra = tuple(d for d in read if d not in declared)
        if extra:
            undeclared[rule["name"]] = extra
        compiled.append(
            CompiledRule(
                name=rule["name"],
                expression=rule["expression"],
                message=rule["message"],
                refer=rule["refer"],
                declared_needs=declared,
                needs=declared + extra,
                ast=ast,
                limit_problem=limit_problem,
            )
        )
    datasets = tuple(dict.fromkeys(d for rule in compiled for d in rule.needs))
    return CompiledRuleSet(
        rules=tuple(compiled),
        digest=hashlib.sha256(canonical.encode()).hexdigest(),
        datasets=datasets,
        fields_read={d: frozenset(fields_read.get(d, ())) for d in datasets},
        undeclared_needs=undeclared,
    )


def _datasets_read(expression: str, fields_read: dict[str, set[str]]) -> tuple[str, ...]:
    """Datasets an expression reads, in order; adds the fields it reads to ``fields_read``.

    A regular expression, not the AST: rules index ``shared`` with literal dataset codes, and a
    code computed at run time (``shared[form.x]``) cannot be known before evaluation anyway."""
    datasets: list[str] = []
    for match in _SHARED_READ.finditer(expression):
        dataset = match.group(1) or match.group(2)
        datasets.append(dataset)
        name = match.group(3) or match.group(4) or match.group(5)
        fields = fields_read.setdefault(dataset, set())
        if name:
            fields.add(name)
    return tuple(dict.fromkeys(datasets))


# --- the context -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ApplicantFacts:
    """What the rules may know of the applicant, from the verified identity (not the form)."""

    kind: Literal["person", "company"]
    age: int | None
    """Whole years on the decision date; ``None`` for a company."""
    region_code: str
    """6-digit division code: a person's from the ID number, a company's from its credit code."""
    assurance: str
    """How the identity was verified: ``wechat``, ``real_name`` or ``real_person``."""


def build_context(
    *,
    form: Mapping[str, Any],
    applicant: ApplicantFacts,
    shared: Mapping[str, SharedData],
    today: date,
) -> Context:
    """The CEL activation for one application. Built once per application and shared by all
    its rules (evaluation never changes it)."""
    facts: dict[str, Any] = {
        "kind": applicant.kind,
        "region_code": applicant.region_code,
        "assurance": applicant.assurance,
    }
    if applicant.age is not None:  # absent rather than null: a rule reading it errs → refer
        facts["age"] = applicant.age
    records = {
        dataset: answer if isinstance(answer, Mapping) else {} for dataset, answer in shared.items()
    }
    return {
        "form": _to_cel_map(form, "form"),
        "applicant": _to_cel_map(facts, "applicant"),
        "shared": _to_cel_map(records, "shared"),
        "today": celtypes.StringType(today.isoformat()),
    }


def needs_status_of(shared: Mapping[str, SharedData]) -> dict[str, NeedStatus]:
    """The status of each dataset answer, as :func:`evaluate` wants it."""
    return {
        dataset: "found" if isinstance(answer, Mapping) else answer.value
        for dataset, answer in shared.items()
    }


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def _to_cel(value: Any, path: str) -> celtypes.Value | celpy.CELEvalError:
    """Python (JSON-like) → CEL values. Integers stay integers and floats become doubles: CEL
    does not compare ``int`` with ``double`` (``1 == 1.0`` is an error), so rules on amounts
    written as doubles convert with ``double(...)``, as the demo rules do."""
    # bool before int: True is an int to Python, and must be a CEL bool.
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            # CEL integers are 64-bit. An error value instead of an exception: the rules that
            # read this field err (→ refer), the others still run, and a form with an absurd
            # number cannot crash the approval.
            return celpy.CELEvalError(f"{path}: 整数超出64位范围", OverflowError, None)
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if value is None:
        return None  # celpy's null
    # datetime before date, of which it is a subclass.
    if isinstance(value, datetime):
        return celtypes.StringType(value.isoformat())
    if isinstance(value, date):
        return celtypes.StringType(value.isoformat())
    if isinstance(value, Mapping):
        return _to_cel_map(value, path)
    if isinstance(value, list | tuple):
        items = [_to_cel(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return celtypes.ListType(cast(list[celtypes.Value], items))  # see _to_cel_map
    raise TypeError(f"{path}: {type(value).__name__} has no CEL form")


def _to_cel_map(value: Mapping[Any, Any], path: str) -> celtypes.MapType:
    converted: dict[celtypes.Value, celtypes.Value | celpy.CELEvalError] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{path}: map keys must be strings, not {type(key).__name__}")
        converted[celtypes.StringType(key)] = _to_cel(item, f"{path}.{key}")
    # celpy's annotations do not admit error values inside containers, but its evaluator
    # holds them there as it holds them in expressions: reading one raises it.
    return celtypes.MapType(cast(dict[celtypes.Value, celtypes.Value], converted))


# --- evaluating --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RuleResult:
    name: str
    result: RuleOutcome
    message: str
    """The rule's Chinese message: what a false result means."""
    detail: str | None = None
    """For staff: the missing datasets of a skipped rule, the error of a rule that raised."""
    refer: bool = False
    over_limit: bool = False
    """The rule was over a static limit or stopped by the step budget (an ``error``)."""


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    outcome: Outcome
    reason: str
    """Chinese, for the applicant."""
    deciding_rule: str | None
    """The first denying rule; else the first rule that sent the case to a person."""
    results: tuple[RuleResult, ...]
    """Every rule, in the item's order."""
    missing: Mapping[str, Literal["not_found", "unavailable"]]
    """Needed datasets without a record, and why."""
    rule_set_digest: str
    elapsed_ms: float
    """Time spent evaluating (the context is built before, the data looked up before that)."""


APPROVED_REASON: Final = "符合全部秒批条件，已自动审批通过"
# Neutral on purpose: the applicant learns a person will decide, not which department's
# system was down or which expression failed; staff read the per-rule results.
REFER_REASONS: Final[Mapping[str, str]] = {
    "skipped": "转人工审核：部分信息暂时无法通过数据共享自动核验，将由工作人员审核",
    "error": "转人工审核：部分条件无法自动判断，将由工作人员审核",
    "false": "转人工审核：部分条件需要工作人员进一步核实",
    "empty": "转人工审核：该事项未配置自动审批规则，将由工作人员审核",
}


def evaluate(
    rule_set: CompiledRuleSet,
    context: Context,
    *,
    needs_status: Mapping[str, NeedStatus],
) -> Evaluation:
    """Evaluate every rule and decide (precedence: see the module's docstring).

    ``needs_status`` says, for each dataset, whether a record was found; a dataset it does not
    mention counts as unavailable, so forgetting to look something up refers, never denies."""
    started = time.perf_counter()
    budget = _Budget(total=cel_limits.STEP_BUDGET_PER_RULE_SET)
    # One activation for all the rules of this application: building it costs about as much
    # as evaluating a simple rule, and celpy's runner would build (and copy) one per rule.
    activation = celpy.Activation(
        annotations=_ENV.annotations,
        package=_ENV.package,
        vars=context,
        functions=_charged_functions(budget),
    )
    results: list[RuleResult] = []
    missing: dict[str, Literal["not_found", "unavailable"]] = {}
    for rule in rule_set.rules:
        absent = {
            d: status
            for d in rule.needs
            if (status := needs_status.get(d, "unavailable")) != "found"
        }
        if absent:
            missing.update(absent)
            results.append(_result(rule, "skipped", _absent_detail(absent)))
            continue
        results.append(_evaluate_rule(rule, activation, budget))
    outcome, deciding = _decide(results)
    if not results:
        reason = REFER_REASONS["empty"]
    elif outcome == "approve":
        reason = APPROVED_REASON
    elif outcome == "deny":
        assert deciding is not None
        reason = deciding.message
    else:
        assert deciding is not None
        reason = REFER_REASONS["false" if deciding.result == "false" else deciding.result]
    return Evaluation(
        outcome=outcome,
        reason=reason,
        deciding_rule=deciding.name if deciding else None,
        results=tuple(results),
        missing=missing,
        rule_set_digest=rule_set.digest,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


class _OverBudget(BaseException):
    """Raised out of the interpreter when a rule has used its steps. A BaseException on
    purpose: celpy catches ``Exception`` in places (and logs the arguments, which hold the
    applicant's data, at ERROR level); this must unwind straight to :func:`_evaluate_rule`."""


class _Budget:
    """Steps left for the rule being evaluated, and for the application's whole rule set."""

    __slots__ = ("left", "total_left")

    def __init__(self, *, total: int) -> None:
        self.total_left = total
        self.left = 0

    def start_rule(self) -> None:
        self.left = min(cel_limits.STEP_BUDGET_PER_RULE, self.total_left)

    def end_rule(self, allowed: int) -> None:
        self.total_left -= allowed - max(self.left, 0)

    def charge(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise _OverBudget


class _BudgetedEvaluator(celpy.Evaluator):
    """celpy's interpreter, charging one step per parse-tree node it visits (lark's
    ``_visit_tree`` is where every visit goes, the comprehension bodies' included: they run
    in sub-evaluators that share the budget)."""

    def __init__(self, ast: lark.Tree, activation: celpy.Activation, budget: _Budget) -> None:
        super().__init__(ast=ast, activation=activation)
        self._budget = budget

    def sub_evaluator(self, ast: lark.Tree) -> celpy.Evaluator:
        return _BudgetedEvaluator(ast, self.activation, self._budget)

    def _visit_tree(self, tree: lark.Tree) -> Any:
        self._budget.charge(1)
        return super()._visit_tree(tree)


# Operations whose cost grows with the size of what they read or build: a node visit would
# count `big_list == big_list` or `s + s` (doubled in a chain of maps) as one step.
_SIZED_FUNCTIONS: Final = ("_+_", "_==_", "_!=_", "_in_", "contains", "matches")


def _size(value: object) -> int:
    return len(value) if isinstance(value, str | bytes | list | dict) else 0


def _charged_functions(budget: _Budget) -> dict[str, Any]:
    def charged(function: Any) -> Any:
        def run(*args: Any) -> Any:
            budget.charge(sum(_size(a) for a in args) // 16)
            result = function(*args)
            budget.charge(_size(result) // 16)
            return result

        return run

    return {name: charged(base_functions[name]) for name in _SIZED_FUNCTIONS}


def _evaluate_rule(rule: CompiledRule, activation: celpy.Activation, budget: _Budget) -> RuleResult:
    if rule.limit_problem is not None:
        return _result(rule, "error", f"规则超出限制：{rule.limit_problem}", over_limit=True)
    budget.start_rule()
    allowed = budget.left
    try:
        value = _BudgetedEvaluator(rule.ast, activation, budget).evaluate()
    except _OverBudget:
        log.warning("秒批规则 %s 超出计算预算（%d 步）", rule.name, allowed)
        return _result(rule, "error", f"计算量超出预算（{allowed} 步）", over_limit=True)
    except celpy.CELEvalError as exc:
        return _result(rule, "error", f"运行错误：{_describe(exc)}")
    except Exception as exc:
        # Anything else is celpy failing on an odd expression: still a person's case, not a
        # crash of the approval. Logged by type only: messages can quote the applicant's data.
        log.warning("秒批规则 %s 求值异常：%s", rule.name, type(exc).__name__)
        return _result(rule, "error", f"运行异常：{type(exc).__name__}")
    finally:
        budget.end_rule(allowed)
    if isinstance(value, celtypes.BoolType | bool):
        return _result(rule, "true" if value else "false")
    return _result(rule, "error", f"规则结果不是布尔值：{type(value).__name__}")


def _decide(results: Sequence[RuleResult]) -> tuple[Outcome, RuleResult | None]:
    for result in results:
        if result.result == "false" and not result.refer:
            return "deny", result
    for result in results:
        if result.result != "true":
            return "refer", result
    return ("approve", None) if results else ("refer", None)


def _result(
    rule: CompiledRule, result: RuleOutcome, detail: str | None = None, *, over_limit: bool = False
) -> RuleResult:
    return RuleResult(
        name=rule.name,
        result=result,
        message=rule.message,
        detail=detail,
        refer=rule.refer,
        over_limit=over_limit,
    )


_STATUS_TEXT: Final = {"not_found": "未查到记录", "unavailable": "暂不可用"}


def _absent_detail(absent: Mapping[str, str]) -> str:
    return "缺少共享数据：" + "；".join(
        f"{dataset}（{_STATUS_TEXT.get(status, status)}）" for dataset, status in absent.items()
    )


def _describe(exc: celpy.CELEvalError) -> str:
    first = exc.args[0] if exc.args else type(exc).__name__
    return str(first)


def dry_run(
    rules: Sequence[Mapping[str, Any]],
    *,
    form: Mapping[str, Any],
    applicant: ApplicantFacts,
    shared: Mapping[str, SharedData],
    today: date,
) -> Evaluation:
    """Evaluate draft rules against sample data (the catalogue admin's 试运行). A needed
    dataset missing from ``shared`` counts as unavailable, as in production.

    Raises :class:`RuleSetInvalid` naming the rule when one is over a static limit or runs
    out of its step budget on this sample: in production it would refer every such case."""
    rule_set = compile_rule_set(rules)
    for rule in rule_set.rules:
        if rule.limit_problem is not None:
            raise RuleSetInvalid(f"规则“{rule.name}”{rule.limit_problem}")
    context = build_context(form=form, applicant=applicant, shared=shared, today=today)
    evaluation = evaluate(rule_set, context, needs_status=needs_status_of(shared))
    for result in evaluation.results:
        if result.over_limit:
            raise RuleSetInvalid(
                f"规则“{result.name}”的计算量超出预算（每条规则最多 "
                f"{cel_limits.STEP_BUDGET_PER_RULE} 步，全部规则合计最多 "
                f"{cel_limits.STEP_BUDGET_PER_RULE_SET} 步）：请减少嵌套的 map/all/exists 或"
                "缩小列表"
            )
    return evaluation
