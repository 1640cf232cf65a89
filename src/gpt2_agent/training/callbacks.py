"""Trainer callbacks: named events, plus the metrics file, the database and the progress bar.

Events (the trainer calls them on rank 0 only):

- ``on_train_start(trainer)``
- ``on_resume(trainer, step)``: training continues from a checkpoint of ``step``; logs drop
  whatever a killed run wrote after it, so the curve has no duplicated steps.
- ``on_step(trainer, metrics) -> bool``: after each optimizer step; returning ``False`` stops.
- ``on_eval(trainer, metrics)``: after each evaluation.
- ``on_checkpoint(trainer, path)``: after a checkpoint was written.
- ``on_train_end(trainer, result)``

Subclasses of :class:`Callback` override the protected ``_on_*`` hooks; the public methods do
the bookkeeping first (template method, as in Stable-Baselines3's ``BaseCallback``).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

if TYPE_CHECKING:
    from gpt2_agent.store import Database

logger = logging.getLogger(__name__)

EVENTS = ("on_train_start", "on_resume", "on_step", "on_eval", "on_checkpoint", "on_train_end")
EventFn = Callable[..., Any]


class Callback:
    """Base class: counts calls, then runs the matching ``_on_*`` hook."""

    def __init__(self) -> None:
        self.n_steps = 0
        self.n_evals = 0

    def on_train_start(self, trainer: Any) -> None:
        self._on_train_start(trainer)

    def on_resume(self, trainer: Any, step: int) -> None:
        self.n_steps = step
        self._on_resume(trainer, step)

    def on_step(self, trainer: Any, metrics: dict[str, Any]) -> bool:
        self.n_steps += 1
        return self._on_step(trainer, metrics) is not False

    def on_eval(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self.n_evals += 1
        self._on_eval(trainer, metrics)

    def on_checkpoint(self, trainer: Any, path: Path) -> None:
        self._on_checkpoint(trainer, path)

    def on_train_end(self, trainer: Any, result: Any) -> None:
        self._on_train_end(trainer, result)

    # Hooks for subclasses.
    def _on_train_start(self, trainer: Any) -> None: ...
    def _on_resume(self, trainer: Any, step: int) -> None: ...
    def _on_step(self, trainer: Any, metrics: dict[str, Any]) -> bool | None:
        return None

    def _on_eval(self, trainer: Any, metrics: dict[str, Any]) -> None: ...
    def _on_checkpoint(self, trainer: Any, path: Path) -> None: ...
    def _on_train_end(self, trainer: Any, result: Any) -> None: ...


class JsonlMetrics(Callback):
    """One JSON object per line: ``{"step", "split": "train"|"val", "loss", ...}``."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _on_resume(self, trainer: Any, step: int) -> None:
        if not self.path.is_file():
            return
        kept = [rec for rec in read_jsonl(self.path) if int(rec.get("step", 0)) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(json.dumps(rec) + "\n" for rec in kept), encoding="utf-8")
        tmp.replace(self.path)

    def _on_step(self, trainer: Any, metrics: dict[str, Any]) -> bool | None:
        self._write({"split": "train", **metrics})
        return None

    def _on_eval(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._write({"split": "val", **metrics})


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a metrics file; a last line cut short by a crash is skipped."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                logger.warning("skipping a partial line in %s", path)
    return records


class DatabaseMetrics(Callback):
    """Metrics rows in ``training_metrics`` for the run ``run_id``, written in small batches."""

    def __init__(self, db: Database, run_id: int, *, flush_every: int = 50) -> None:
        super().__init__()
        self.db = db
        self.run_id = run_id
        self.flush_every = flush_every
        self._pending: list[tuple[int, str, str, float]] = []

    def _add(self, step: int, split: str, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if name in ("step", "split") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            self._pending.append((step, split, name, float(value)))

    def flush(self) -> None:
        """Write the buffered rows now."""
        if not self._pending:
            return
        from gpt2_agent.store.training_tables import add_metrics

        add_metrics(self.db, self.run_id, self._pending)
        self._pending = []

    def _on_resume(self, trainer: Any, step: int) -> None:
        from gpt2_agent.store.training_tables import delete_metrics_after

        delete_metrics_after(self.db, self.run_id, step)

    def _on_step(self, trainer: Any, metrics: dict[str, Any]) -> bool | None:
        self._add(int(metrics["step"]), "train", metrics)
        # Flush before a checkpoint is written, so a resume never lacks rows it already had.
        if len(self._pending) >= self.flush_every or getattr(trainer, "checkpoint_due", False):
            self.flush()
        return None

    def _on_eval(self, trainer: Any, metrics: dict[str, Any]) -> None:
        self._add(int(metrics["step"]), "val", metrics)
        self.flush()

    def _on_train_end(self, trainer: Any, result: Any) -> None:
        self.flush()


class ProgressBar(Callback):
    """A rich progress bar with loss, tokens/s and ETA; silent when stdout is not a terminal."""

    def __init__(self, *, enabled: bool | None = None, console: Console | None = None) -> None:
        super().__init__()
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def _on_train_start(self, trainer: Any) -> None:
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=trainer.total_steps, completed=trainer.step, loss="-", tps="-"
        )

    def _on_step(self, trainer: Any, metrics: dict[str, Any]) -> bool | None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task,
                completed=metrics["step"],
                loss=f"{metrics['loss']:.4f}",
                tps=f"{metrics.get('tokens_per_s', 0):,.0f}",
            )
        return None

    def _on_eval(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if self._progress is not None:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            self._progress.console.print(f"step {metrics['step']}: val {shown}")

    def _on_train_end(self, trainer: Any, result: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class FunctionCallback(Callback):
    """Adapts a plain function registered with ``trainer.add_callback("on_step", fn)``."""

    def __init__(self, event: str, fn: EventFn) -> None:
        super().__init__()
        if event not in EVENTS:
            raise ValueError(f"unknown callback event {event!r} (known: {', '.join(EVENTS)})")
        self.event = event
        self.fn = fn

    def _on_train_start(self, trainer: Any) -> None:
        if self.event == "on_train_start":
            self.fn(trainer)

    def _on_resume(self, trainer: Any, step: int) -> None:
        if self.event == "on_resume":
            self.fn(trainer, step)

    def _on_step(self, trainer: Any, metrics: dict[str, Any]) -> bool | None:
        if self.event == "on_step":
            return bool(self.fn(trainer, metrics) is not False)
        return None

    def _on_eval(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if self.event == "on_eval":
            self.fn(trainer, metrics)

    def _on_checkpoint(self, trainer: Any, path: Path) -> None:
        if self.event == "on_checkpoint":
            self.fn(trainer, path)

    def _on_train_end(self, trainer: Any, result: Any) -> None:
        if self.event == "on_train_end":
            self.fn(trainer, result)


__all__ = [
    "EVENTS",
    "Callback",
    "DatabaseMetrics",
    "FunctionCallback",
    "JsonlMetrics",
    "ProgressBar",
    "read_jsonl",
]
