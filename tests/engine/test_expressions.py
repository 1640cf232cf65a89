from __future__ import annotations

import pytest

from gpt2_agent.engine.expressions import ExpressionError, compile_expression, evaluate, render

SCOPE = {"input": {"n": 3, "name": "x"}, "steps": {"a": {"output": {"ok": True, "p": 0.9}, "skipped": False}}}


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("input.n + 1", 4),
        ("steps.a.output.p >= 0.5 and steps.a.output.ok", True),
        ("steps.missing.output.p == null", True),
        ("input['name'] in ['x', 'y']", True),
        ("not steps.a.skipped", True),
        ("${{ input.n * 2 }}", 6),
    ],
)
def test_evaluates(expr: str, value: object) -> None:
    assert evaluate(expr, SCOPE) == value


@pytest.mark.parametrize(
    "expr", ["__import__('os')", "input.n.__class__()", "lambda: 1", "[x for x in input]", "os.system"]
)
def test_refuses_unsafe(expr: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(expr)


def test_render_keeps_types_and_formats_text() -> None:
    assert render({"n": "${{ input.n }}", "msg": "order ${{ input.name }}!"}, SCOPE) == {
        "n": 3,
        "msg": "order x!",
    }
