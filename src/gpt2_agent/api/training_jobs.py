"""Training as an engine task: ``POST /training-runs`` queues a ``train_model`` task.

Running training through the engine gives it what every task has: a durable queue, a lease
(a crashed server's run is resumed from its last checkpoint by the next worker), cancellation,
and the ``training`` queue that a Celery deployment can route to dedicated workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gpt2_agent.config import Settings
from gpt2_agent.engine.errors import PermanentError
from gpt2_agent.engine.handlers import RetryPolicy, TaskContext, TaskType

TRAIN_TASK = "train_model"


def configs_dir() -> Path:
    """The shipped training configs (``./configs`` of the working directory, else the checkout's)."""
    here = Path.cwd() / "configs"
    if here.is_dir():
        return here
    import gpt2_agent

    return Path(gpt2_agent.__file__).resolve().parents[2] / "configs"


def shipped_configs() -> list[str]:
    folder = configs_dir()
    return sorted(p.name for p in folder.glob("*.toml")) if folder.is_dir() else []


class TrainIn(BaseModel):
    training_run_id: int = Field(ge=1)
    config: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+\.toml$")
    overrides: list[str] = Field(default_factory=list, max_length=20)


class TrainOut(BaseModel):
    training_run_id: int
    registered_version: int | None
    metrics: dict[str, Any]


class _StopWhenCancelled:
    """Trainer callback: stop at the next step once the task is cancelled or its lease is lost."""

    def __init__(self, ctx: TaskContext) -> None:
        from gpt2_agent.training.callbacks import Callback
        from gpt2_agent.training.trainer import TrainingCancelled

        ctx_ = ctx

        class Stop(Callback):
            def _on_step(self, trainer: Any, metrics: dict[str, Any]) -> bool | None:
                if ctx_.cancelled.is_set():
                    raise TrainingCancelled("the training task was cancelled")
                return None

        self.callback = Stop()


def train_task(settings: Settings) -> TaskType[TrainIn, TrainOut]:
    """The ``train_model`` task type (queue ``training``)."""

    def train_model(ctx: TaskContext, inp: TrainIn) -> TrainOut:
        from gpt2_agent.training import train_from_config
        from gpt2_agent.training.config import ConfigError
        from gpt2_agent.training.data.errors import DataError

        path = configs_dir() / inp.config
        if not path.is_file():
            raise PermanentError(f"unknown training config {inp.config!r}")
        from gpt2_agent.nlu.train import is_nlu_config

        if is_nlu_config(path):
            raise PermanentError(f"{inp.config} is an NLU config: train it with `gpt2-agent train {path}`")
        try:
            result = train_from_config(
                path,
                settings,
                overrides=inp.overrides,
                progress=False,
                resume=True,  # a retry after a crash continues from the last checkpoint
                run_id=inp.training_run_id,
                callbacks=[_StopWhenCancelled(ctx).callback],
            )
        except (ConfigError, DataError) as exc:
            raise PermanentError(str(exc)) from None
        numbers = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        return TrainOut(
            training_run_id=inp.training_run_id, registered_version=result.registered_version, metrics=numbers
        )

    return TaskType(
        TRAIN_TASK,
        TrainIn,
        TrainOut,
        train_model,
        retry=RetryPolicy(max_attempts=2, initial_backoff_seconds=5),
        timeout_seconds=None,
        queue="training",
        description="Train a model from a shipped config",
    )
