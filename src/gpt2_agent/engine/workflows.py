"""Workflow definitions in YAML, validated on load with errors naming file, line and field.

Example::

    name: order-fulfillment
    steps:
      - name: audit
        uses: order_audit
        with: {order_no: "${{ input.order_no }}"}
      - name: review
        type: approval
        when: steps.audit.output.decision == 'approve'
      - name: pay
        uses: order_payment
        with: {order_no: "${{ input.order_no }}"}
    output:
      status: "${{ steps.pay.output.status }}"
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpt2_agent.engine.errors import WorkflowDefinitionError
from gpt2_agent.engine.expressions import ExpressionError, compile_expression, referenced_steps, templates_in

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")


class StepRetry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_backoff_seconds: float = Field(default=1.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)
    max_backoff_seconds: float = Field(default=300.0, ge=0)


class StepDef(BaseModel):
    """One step: a task (``uses:``) or a person's decision (``type: approval``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    type: Literal["task", "approval"] = "task"
    uses: str | None = None
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    when: str | None = None
    retry: StepRetry | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    title: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_', starting with a letter")
        return v

    @field_validator("when")
    @classmethod
    def _when(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                compile_expression(v)
            except ExpressionError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _kind(self) -> StepDef:
        if self.type == "task" and not self.uses:
            raise ValueError("a task step needs 'uses: <task type>'")
        if self.type == "approval" and self.uses:
            raise ValueError("an approval step takes no 'uses'")
        for expr in templates_in(self.with_) + templates_in(self.context) + templates_in(self.title or ""):
            try:
                compile_expression(expr)
            except ExpressionError as exc:
                raise ValueError(str(exc)) from None
        return self

    def expressions(self) -> list[tuple[str, str]]:
        """(field, expression) pairs of every expression in the step."""
        pairs = [("with", e) for e in templates_in(self.with_)]
        pairs += [("context", e) for e in templates_in(self.context)]
        pairs += [("title", e) for e in templates_in(self.title or "")]
        return [*pairs, ("when", self.when)] if self.when else pairs


class WorkflowDef(BaseModel):
    """A validated workflow definition; stored as a snapshot on each run."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    version: int = 1
    input: dict[str, Literal["string", "number", "integer", "boolean", "object", "array", "any"]] = Field(
        default_factory=dict
    )
    steps: list[StepDef] = Field(min_length=1)
    output: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("must be lowercase letters, digits, '-' or '_', starting with a letter")
        return v

    @model_validator(mode="after")
    def _references(self) -> WorkflowDef:
        seen: set[str] = set()
        for i, step in enumerate(self.steps):
            if step.name in seen:
                raise _StepError(i, "name", f"duplicate step name {step.name!r}")
            for field, expr in step.expressions():
                unknown = referenced_steps(compile_expression(expr)) - seen
                if unknown:
                    raise _StepError(
                        i, field, f"refers to step(s) {sorted(unknown)} that do not come before it"
                    )
            seen.add(step.name)
        for expr in templates_in(self.output):
            unknown = referenced_steps(compile_expression(expr)) - seen
            if unknown:
                raise ValueError(f"output refers to unknown step(s) {sorted(unknown)}")
        return self

    def step_index(self, name: str) -> int:
        for i, step in enumerate(self.steps):
            if step.name == name:
                return i
        raise KeyError(name)


class _StepError(ValueError):
    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.index, self.field = index, field


def check_input(defn: WorkflowDef, data: Any) -> list[dict[str, str]]:
    """Check a run's input against the workflow's declared input fields; returns errors."""
    if not isinstance(data, dict):
        return [{"field": "input", "message": "must be a JSON object"}]
    errors: list[dict[str, str]] = []
    checks: dict[str, Any] = {
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "any": lambda v: True,
    }
    for name, kind in defn.input.items():
        if name not in data:
            errors.append({"field": f"input.{name}", "message": "field required"})
        elif not checks[kind](data[name]):
            errors.append({"field": f"input.{name}", "message": f"must be of type {kind}"})
    return errors


# --- loading with line numbers -------------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[str(key)] = key_node.start_mark.line + 1
    mapping["__lines__"] = lines
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k not in ("__lines__", "__line__")}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def _line_of(raw: Any, loc: tuple[Any, ...]) -> int | None:
    """Walk ``loc`` through the raw (line-annotated) data; return the deepest known line."""
    line: int | None = raw.get("__line__") if isinstance(raw, dict) else None
    node = raw
    for part in loc:
        if isinstance(node, dict):
            key = "with" if part == "with_" else str(part)
            line = node.get("__lines__", {}).get(key, line)
            node = node.get(key)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if isinstance(node, dict):
                line = node.get("__line__", line)
        else:
            break
    return line


def parse_workflow(text: str, source: str = "<string>") -> WorkflowDef:
    """Parse and validate workflow YAML; errors name the file, line and field."""
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise WorkflowDefinitionError(source, line, "yaml", str(exc.problem or exc)) from None
    if not isinstance(raw, dict):
        raise WorkflowDefinitionError(source, 1, "workflow", "must be a YAML mapping")
    try:
        return WorkflowDef.model_validate(_strip_lines(raw))
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        inner = err.get("ctx", {}).get("error")
        if isinstance(inner, _StepError):
            loc = ("steps", inner.index, inner.field)
        field = ".".join("with" if p == "with_" else str(p) for p in loc) or "workflow"
        message = str(inner) if inner is not None else err["msg"]
        raise WorkflowDefinitionError(source, _line_of(raw, loc), field, message) from None


def load_workflow_file(path: Path) -> WorkflowDef:
    """Load one workflow file."""
    return parse_workflow(path.read_text(encoding="utf-8"), str(path))


class WorkflowRegistry:
    """Workflow definitions by name."""

    def __init__(self) -> None:
        self._defs: dict[str, WorkflowDef] = {}

    def register(self, defn: WorkflowDef) -> None:
        self._defs[defn.name] = defn

    def load_dir(self, folder: Path) -> list[WorkflowDef]:
        """Load every ``*.yaml``/``*.yml`` in ``folder``; the first invalid file raises."""
        loaded = []
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            defn = load_workflow_file(path)
            self.register(defn)
            loaded.append(defn)
        return loaded

    def get(self, name: str) -> WorkflowDef:
        from gpt2_agent.engine.errors import NotFound

        try:
            return self._defs[name]
        except KeyError:
            raise NotFound(
                f"unknown workflow {name!r}; known: {', '.join(sorted(self._defs)) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._defs)
