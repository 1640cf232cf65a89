"""A small, safe expression language for workflow files.

``when: steps.audit.output.decision == 'approve'`` and ``with: {order_no: "${{ input.order_no }}"}``.
Expressions are parsed with :mod:`ast` and only a whitelist of nodes is evaluated: names
(``input``, ``steps``, ``run``, ``true``, ``false``, ``null``), attribute and item access,
comparisons, ``and``/``or``/``not``, arithmetic and literals. Missing keys read as ``None``
(like GitHub Actions), so a skipped step's output can be tested without errors.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping
from typing import Any

TEMPLATE = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
ROOT_NAMES = frozenset({"input", "steps", "run"})
LITERAL_NAMES: dict[str, Any] = {"true": True, "false": False, "null": None, "True": True, "False": False}

_CMP = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b if b is not None else False,
    ast.NotIn: lambda a, b: a not in b if b is not None else True,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_BIN = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}


class ExpressionError(ValueError):
    """An expression that does not parse, uses a forbidden construct, or fails to evaluate."""


def compile_expression(source: str) -> ast.Expression:
    """Parse and check an expression; raises :class:`ExpressionError` with the reason."""
    source = unwrap(source)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse expression {source!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in expression {source!r}")
        if isinstance(node, ast.Name) and node.id not in ROOT_NAMES and node.id not in LITERAL_NAMES:
            raise ExpressionError(
                f"unknown name {node.id!r} in expression {source!r} (use input, steps or run)"
            )
    return tree


def referenced_steps(tree: ast.Expression) -> set[str]:
    """Step names the expression reads via ``steps.NAME``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "steps":
            found.add(node.attr)
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "steps"
            and isinstance(node.slice, ast.Constant)
        ):
            found.add(str(node.slice.value))
    return found


def unwrap(source: str) -> str:
    """``${{ x }}`` -> ``x``; a bare expression is returned unchanged."""
    match = TEMPLATE.fullmatch(source.strip())
    return match.group(1) if match else source.strip()


def evaluate(source: str | ast.Expression, scope: Mapping[str, Any]) -> Any:
    """Evaluate an expression against ``scope`` (keys ``input``, ``steps``, ``run``)."""
    tree = compile_expression(source) if isinstance(source, str) else source
    try:
        return _eval(tree.body, scope)
    except ExpressionError:
        raise
    except Exception as exc:  # arithmetic on None, comparing str with int, ...
        raise ExpressionError(f"cannot evaluate {ast.unparse(tree)!r}: {exc}") from None


def render(value: Any, scope: Mapping[str, Any]) -> Any:
    """Resolve ``${{ }}`` templates inside a mapping/list/string value.

    A string that is exactly one template keeps the expression's type (numbers stay numbers);
    templates embedded in text are formatted as strings.
    """
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())
        if whole:
            return evaluate(whole.group(1), scope)
        return TEMPLATE.sub(lambda m: _to_text(evaluate(m.group(1), scope)), value)
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    return value


def templates_in(value: Any) -> list[str]:
    """Every expression inside ``${{ }}`` templates of a nested value (for load-time checks)."""
    if isinstance(value, str):
        return [m.group(1) for m in TEMPLATE.finditer(value)]
    if isinstance(value, Mapping):
        return [e for v in value.values() for e in templates_in(v)]
    if isinstance(value, list):
        return [e for v in value for e in templates_in(v)]
    return []


def _to_text(value: Any) -> str:
    return "" if value is None else str(value)


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.Compare,
    ast.BinOp,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Subscript,
    ast.Constant,
    ast.List,
    ast.Tuple,
    *_CMP.keys(),
    *_BIN.keys(),
)


def _get(container: Any, key: Any) -> Any:
    if container is None:
        return None
    if isinstance(container, Mapping):
        return container.get(key)
    if isinstance(container, (list, tuple)) and isinstance(key, int):
        return container[key] if -len(container) <= key < len(container) else None
    return None


def _eval(node: ast.AST, scope: Mapping[str, Any]) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            if name in LITERAL_NAMES:
                return LITERAL_NAMES[name]
            return scope.get(name)
        case ast.Attribute(value=inner, attr=attr):
            return _get(_eval(inner, scope), attr)
        case ast.Subscript(value=inner, slice=index):
            return _get(_eval(inner, scope), _eval(index, scope))
        case ast.BoolOp(op=ast.And(), values=values):
            result: Any = True
            for v in values:
                result = _eval(v, scope)
                if not result:
                    return result
            return result
        case ast.BoolOp(op=ast.Or(), values=values):
            result = False
            for v in values:
                result = _eval(v, scope)
                if result:
                    return result
            return result
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, scope)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, scope)
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return +_eval(operand, scope)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            current = _eval(left, scope)
            for op, comp in zip(ops, comparators, strict=True):
                right = _eval(comp, scope)
                if not _CMP[type(op)](current, right):
                    return False
                current = right
            return True
        case ast.BinOp(left=left, op=op, right=right):
            return _BIN[type(op)](_eval(left, scope), _eval(right, scope))
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            return [_eval(e, scope) for e in elts]
    raise ExpressionError(f"unsupported expression node {type(node).__name__}")
