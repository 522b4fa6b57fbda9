"""How big and how expensive a 秒批 rule (a CEL expression) may be.

One place for the limits, because two services apply them and neither may import the other:
the catalogue refuses a rule over a static limit when it is saved (naming the rule), and the
approval service checks again when it compiles a rule set (rules saved before the limits
existed), then bounds every evaluation with a run-time budget.

Why both. A CEL comprehension (``map``, ``filter``, ``all``, ``exists``, ``exists_one``)
repeats its body once per element, so nesting multiplies: three nested ``map``\\ s over a
30-element list are 27 000 evaluations of the body, and cel-python interprets each node in
about ten microseconds. The static limits refuse the obvious shapes at save time; but a
list's length is only known at run time (``form.items`` is the applicant's), so no static
estimate bounds the cost, and :data:`STEP_BUDGET_PER_RULE` does. cel-python 0.5 has no cost
tracking of its own: the approval service counts the nodes its interpreter visits, plus the
size of what ``+`` builds and what ``in``/``==``/``contains``/``matches`` read, and stops a
rule when the count passes the budget (the case goes to a person).

``reduce`` (a cel-python extension, not CEL) is refused outright: its accumulator can double
on every element (``r + r``), which no step count sees coming.
"""

from __future__ import annotations

from typing import Final

import lark

__all__ = [
    "COMPREHENSIONS",
    "MAX_AST_NODES",
    "MAX_COMPREHENSIONS",
    "MAX_COMPREHENSION_NESTING",
    "MAX_EXPRESSION_CHARS",
    "MAX_RULES",
    "STEP_BUDGET_PER_RULE",
    "STEP_BUDGET_PER_RULE_SET",
    "static_limit_problem",
]

MAX_RULES: Final = 30
"""Rules per item: with the per-rule budget, what one application can cost at most."""
MAX_EXPRESSION_CHARS: Final = 2000
MAX_AST_NODES: Final = 1000
"""Parse-tree nodes (cel-python's grammar makes about eight per literal or name; the longest
demo rule has under a hundred)."""
MAX_COMPREHENSION_NESTING: Final = 2
"""A comprehension may sit in the body of another one, not deeper: list × list is the most
a real rule needs (each business item checked against an allowed list)."""
MAX_COMPREHENSIONS: Final = 6
"""Comprehensions per expression, nested or chained (``l.map(…).map(…)``): chaining can
double a value each time, so their number is bounded too."""

STEP_BUDGET_PER_RULE: Final = 10_000
"""Interpreter steps one rule may take (about a tenth of a second in cel-python 0.5)."""
STEP_BUDGET_PER_RULE_SET: Final = 50_000
"""Steps all the rules of one application may take together."""

COMPREHENSIONS: Final = frozenset({"map", "filter", "all", "exists", "exists_one"})
_FORBIDDEN_MACROS: Final = frozenset({"reduce"})


def _macro_name(node: lark.Tree) -> str | None:
    """``map`` for the node of ``x.map(v, e)``; ``None`` for any other node."""
    if node.data != "member_dot_arg" or len(node.children) < 2:
        return None
    token = node.children[1]
    return str(token) if isinstance(token, lark.Token) else None


def _measure(ast: lark.Tree) -> dict[str, int]:
    """Nodes, comprehensions, the deepest comprehension nesting, uses of forbidden macros.

    A loop over an explicit stack: ``((((…))))`` nests the tree thousands of levels deep,
    which a recursive walk would answer with a RecursionError."""
    found = {"nodes": 0, "comprehensions": 0, "nesting": 0, "forbidden": 0}
    stack: list[tuple[lark.Tree, int]] = [(ast, 0)]
    while stack:
        node, depth = stack.pop()
        found["nodes"] += 1
        name = _macro_name(node)
        if name in _FORBIDDEN_MACROS:
            found["forbidden"] += 1
        if name in COMPREHENSIONS:
            found["comprehensions"] += 1
        for index, child in enumerate(node.children):
            if isinstance(child, lark.Tree):
                # The target (children[0]) runs once, before the loop; the arguments
                # (children[2]: the variable and the body) run once per element.
                inner = depth + 1 if name in COMPREHENSIONS and index == 2 else depth
                found["nesting"] = max(found["nesting"], inner)
                stack.append((child, inner))
    return found


def static_limit_problem(expression: str, ast: lark.Tree | None) -> str | None:
    """Why a rule is too big or too deep to accept, in Chinese (without the rule's name,
    which the caller puts first); ``None`` if it is within every limit.

    ``ast`` is the expression as cel-python parsed it (``celpy.Environment().compile``);
    ``None`` checks only the length, for an expression that did not parse."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return f"表达式过长（{len(expression)} 个字符，最多 {MAX_EXPRESSION_CHARS} 个）"
    if ast is None:
        return None
    found = _measure(ast)
    if found["forbidden"]:
        return "不能使用 reduce（累积值可能成倍增长，无法限定计算量）"
    if found["nesting"] > MAX_COMPREHENSION_NESTING:
        return (
            f"map/filter/all/exists 嵌套了 {found['nesting']} 层，最多 "
            f"{MAX_COMPREHENSION_NESTING} 层（嵌套的计算量随列表长度成倍增长）"
        )
    if found["comprehensions"] > MAX_COMPREHENSIONS:
        return (
            f"使用了 {found['comprehensions']} 次 map/filter/all/exists，最多 "
            f"{MAX_COMPREHENSIONS} 次"
        )
    if found["nodes"] > MAX_AST_NODES:
        return f"表达式过于复杂（{found['nodes']} 个语法节点，最多 {MAX_AST_NODES} 个）"
    return None
