"""A model-agnostic training loop (in the spirit of minGPT's ``trainer.py``).

Nothing here knows about GPT-2: the trainer gets a ``torch.nn.Module``, a batch source (see
``batches.BatchSource``) and a loss function ``loss_fn(model, batch) -> Tensor``. It does AdamW
with decoupled weight decay on matrices only, linear warmup then cosine decay, gradient
accumulation, clipping, bf16 autocast where the CPU has native bf16, optional ``torch.compile``,
periodic evaluation with early stopping, atomic checkpoints that resume to the same loss curve,
and DDP when launched by ``torchrun``.

Subclasses may override the template-method hooks :meth:`Trainer.compute_loss` and
:meth:`Trainer.evaluate`; plain functions can be attached to named events with
:meth:`Trainer.add_callback` (``"on_step"``, ``"on_eval"``, ``"on_checkpoint"``...).

Example::

    trainer = Trainer(model, TrainerConfig(max_steps=1000), train_batches, out_dir="runs/x",
                      eval_data=val_batches, loss_fn=lambda m, b: m(**b).loss)
    result = trainer.fit()
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from safetensors.torch import load_model as load_model_weights
from safetensors.torch import save_model as save_model_weights

from gpt2_agent.training.batches import Batch, BatchSource, batch_tokens
from gpt2_agent.training.callbacks import EVENTS, Callback, EventFn, FunctionCallback, JsonlMetrics
from gpt2_agent.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
BEST_FILE = "best.safetensors"


class TrainingError(RuntimeError):
    """Training cannot start or continue (bad data, bad settings)."""


class TrainingCancelled(Exception):
    """Raised (by a callback, for example) to stop a run on purpose; the run counts as cancelled."""


class TrainerConfig(BaseModel):
    """Optimisation settings; the ``[train]`` section of a training config."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    lr: float = Field(default=3e-4, gt=0)
    weight_decay: float = Field(default=0.1, ge=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.95, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0)
    batch_size: int = Field(default=16, ge=1)
    grad_accum: int = Field(default=1, ge=1, validation_alias=AliasChoices("grad_accum", "update_freq"))
    max_steps: int | None = Field(default=None, ge=1)
    epochs: float | None = Field(default=None, gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    grad_clip: float = Field(default=1.0, ge=0)  # 0 disables clipping
    eval_every: int = Field(default=0, ge=0)  # 0: evaluate only at the end
    log_every: int = Field(default=1, ge=1)
    checkpoint_every: int = Field(default=0, ge=0)  # 0: only at the end
    keep_checkpoints: int = Field(default=2, ge=1)
    early_stopping_patience: int = Field(default=0, ge=0)  # evaluations without improvement; 0 = off
    early_stopping_min_delta: float = Field(default=0.0, ge=0)
    early_stopping_metric: str = "loss"
    early_stopping_mode: Literal["min", "max"] = "min"
    restore_best: bool = True
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    compile: bool = False
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)
    device: str = "cpu"

    @model_validator(mode="after")
    def _needs_length(self) -> TrainerConfig:
        if self.max_steps is None and self.epochs is None:
            raise ValueError("set max_steps or epochs")
        return self


@dataclass
class FitResult:
    """What a finished (or early-stopped) run reports."""

    steps: int
    epochs: float
    train_loss: float
    best_metric: float | None
    best_step: int | None
    stopped_early: bool
    tokens_seen: int
    tokens_per_s: float
    train_seconds: float
    precision: str
    checkpoint: str | None
    resumed_from: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bf16 matmuls run natively (AVX512-BF16 or AMX on CPU; Ampere+ on CUDA).

    Without native support, oneDNN emulates bf16 and autocast would be slower than fp32.
    """
    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``"auto"`` becomes ``"bf16"`` where supported, else ``"fp32"``; explicit choices are checked."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        logger.warning("bf16 requested but %s has no native bf16; it will be emulated (slow)", device)
    return precision


def lr_at(step: int, *, base_lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine decay to ``base_lr * min_ratio`` at ``total``."""
    if warmup and step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def default_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """``model(**batch).loss``: the Hugging Face convention."""
    loss: torch.Tensor = model(**batch).loss
    return loss


class _LossModule(torch.nn.Module):
    """Puts the loss inside ``forward`` so DDP and ``torch.compile`` see the whole step."""

    def __init__(self, model: torch.nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and embeddings only, never on biases or LayerNorm gains."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    seen: set[int] = set()
    for _, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))  # tied weights appear twice
        (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    """Train ``model`` on ``train_data``; see the module docstring.

    :param model: any ``torch.nn.Module``.
    :param config: optimisation settings.
    :param train_data: a batch source (epochs of batches, ``len``, ``state_dict``).
    :param out_dir: run folder: ``metrics.jsonl``, ``checkpoints/``, ``best.safetensors``.
    :param eval_data: batches for validation (any iterable, re-iterated at each evaluation).
    :param loss_fn: ``loss_fn(model, batch) -> scalar``; default ``model(**batch).loss``.
    :param eval_fn: ``eval_fn(model) -> {metric: value}`` replacing the default mean eval loss.
    :param callbacks: :class:`Callback` objects (a JSONL metrics writer is always added).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainerConfig,
        train_data: BatchSource,
        *,
        out_dir: str | Path,
        eval_data: Iterable[Batch] | None = None,
        loss_fn: LossFn | None = None,
        eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        callbacks: Iterable[Callback] = (),
    ) -> None:
        self.model = model
        self.config = config
        self.train_data = train_data
        self.eval_data = eval_data
        self.loss_fn: LossFn = loss_fn or default_loss
        self.eval_fn = eval_fn
        self.out_dir = Path(out_dir)
        self.checkpoint_dir = self.out_dir / CHECKPOINT_DIR
        self.callbacks: list[Callback] = [JsonlMetrics(self.out_dir / METRICS_FILE), *callbacks]
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        self.is_main = self.rank == 0
        self.device = torch.device(config.device)
        self.precision = resolve_precision(config.precision, config.device)
        # Progress and early-stopping state (all of it goes into checkpoints).
        self.step = 0
        self.tokens_seen = 0
        self.train_seconds = 0.0
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.evals_without_improvement = 0
        self.stopped_early = False
        self.checkpoint_due = False
        self.total_steps = self._total_steps()
        self.last_eval: dict[str, float] = {}
        self.last_train_loss = float("nan")
        self.optimizer: torch.optim.Optimizer | None = None

    # --- public API ----------------------------------------------------------------------------
    def add_callback(self, event: str | Callback, fn: EventFn | None = None) -> None:
        """Attach a :class:`Callback`, or a plain function to one named event."""
        if isinstance(event, Callback):
            self.callbacks.append(event)
            return
        if fn is None:
            raise ValueError("add_callback(event_name, fn) needs a function")
        self.callbacks.append(FunctionCallback(event, fn))

    def compute_loss(self, module: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Loss of one micro-batch (hook; ``module`` wraps the model for DDP/compile)."""
        loss: torch.Tensor = module(batch)
        return loss

    def evaluate(self) -> dict[str, float]:
        """Validation metrics (hook). Default: ``eval_fn`` if given, else the mean eval loss."""
        if self.eval_fn is not None:
            return self.eval_fn(self.model)
        assert self.eval_data is not None
        total, weight = 0.0, 0
        for batch in self.eval_data:
            batch = self._to_device(batch)
            with self._autocast():
                loss = self.loss_fn(self.model, batch)
            n = batch_tokens(batch) or 1
            total += float(loss) * n
            weight += n
        if weight == 0:
            raise TrainingError("the evaluation data yields no batches")
        return {"loss": total / weight}

    def fit(self, *, resume: bool = True) -> FitResult:
        """Train to ``max_steps`` (or ``epochs``), resuming from the latest checkpoint if any."""
        threads = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            return self._fit(resume=resume)
        finally:
            torch.set_num_threads(threads)  # a process-wide setting: give it back

    def _fit(self, *, resume: bool) -> FitResult:
        cfg = self.config
        self._seed_everything(cfg.seed)
        self.model.to(self.device)
        self.optimizer = self._make_optimizer()
        resumed_from = self._maybe_resume() if resume else None
        step_module: torch.nn.Module = _LossModule(self.model, self.loss_fn)
        if self.distributed:
            step_module = torch.nn.parallel.DistributedDataParallel(step_module)
        if cfg.compile:
            step_module.compile()
        self._emit("on_train_start", self)
        if resumed_from is not None:
            self._emit("on_resume", self, resumed_from)
        logger.info(
            "training %d steps from step %d (precision %s, %d rank(s))",
            self.total_steps,
            self.step,
            self.precision,
            self.world_size,
        )
        self.model.train()
        batches = self._batch_iterator()
        last_loss = self.last_train_loss
        stop = self.step >= self.total_steps or self.stopped_early  # a finished run stays finished
        while not stop:
            self.checkpoint_due = bool(cfg.checkpoint_every) and (self.step + 1) % cfg.checkpoint_every == 0
            metrics = self._train_step(step_module, batches)
            last_loss = self.last_train_loss = metrics["loss"]
            stop = self.step >= self.total_steps
            if self.step % cfg.log_every == 0 or stop or self.checkpoint_due:
                stop = not self._emit_step(metrics) or stop
            eval_due = bool(cfg.eval_every) and self.step % cfg.eval_every == 0
            can_eval = self.eval_data is not None or self.eval_fn is not None
            if can_eval and (eval_due or (stop and self.last_eval.get("step") != self.step)):
                stop = self._run_eval() or stop
            if self.checkpoint_due or stop:
                self._checkpoint()
        self._restore_best()
        result = FitResult(
            steps=self.step,
            epochs=self._epochs_done(),
            train_loss=last_loss,
            best_metric=self.best_metric,
            best_step=self.best_step,
            stopped_early=self.stopped_early,
            tokens_seen=self.tokens_seen,
            tokens_per_s=self.tokens_seen / self.train_seconds if self.train_seconds else 0.0,
            train_seconds=self.train_seconds,
            precision=self.precision,
            checkpoint=str(latest_checkpoint(self.checkpoint_dir) or "") or None,
            resumed_from=resumed_from,
        )
        self._emit("on_train_end", self, result)
        return result

    # --- one step ------------------------------------------------------------------------------
    def _train_step(self, module: torch.nn.Module, batches: Iterator[Batch]) -> dict[str, Any]:
        cfg = self.config
        assert self.optimizer is not None
        lr = lr_at(
            self.step,
            base_lr=cfg.lr,
            warmup=self._warmup_steps(),
            total=self.total_steps,
            min_ratio=cfg.min_lr_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        started = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float32)
        tokens = 0
        for micro in range(cfg.grad_accum):
            batch = self._to_device(next(batches))
            tokens += batch_tokens(batch)
            sync = (
                module.no_sync()  # type: ignore[operator]
                if self.distributed and micro < cfg.grad_accum - 1
                else contextlib.nullcontext()
            )
            with sync:
                with self._autocast():
                    loss = self.compute_loss(module, batch) / cfg.grad_accum
                loss.backward()
            loss_sum += loss.detach().float().cpu()
        grad_norm = None
        if cfg.grad_clip:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.distributed:
            reduced = loss_sum.to(self.device)
            dist.all_reduce(reduced)  # SUM: gloo has no AVG
            loss_sum = reduced.cpu() / self.world_size
            tokens *= self.world_size
        elapsed = time.perf_counter() - started
        self.step += 1
        self.tokens_seen += tokens
        self.train_seconds += elapsed
        metrics: dict[str, Any] = {
            "step": self.step,
            "loss": float(loss_sum),
            "lr": lr,
            "tokens": tokens,
            "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
            "step_seconds": elapsed,
            "epoch": self._epochs_done(),
        }
        if grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        if not math.isfinite(metrics["loss"]):
            raise TrainingError(
                f"loss became {metrics['loss']} at step {self.step}; lower lr or check the data"
            )
        return metrics

    def _emit_step(self, metrics: dict[str, Any]) -> bool:
        keep_going = True
        if self.is_main:
            for cb in self.callbacks:
                keep_going = cb.on_step(self, metrics) and keep_going
        return self._agree(keep_going)

    def _run_eval(self) -> bool:
        """Evaluate; returns True when early stopping says stop."""
        self.model.eval()
        with torch.no_grad():
            metrics = self.evaluate()
        self.model.train()
        record = {"step": self.step, **{k: float(v) for k, v in metrics.items()}}
        self.last_eval = record
        self._emit("on_eval", self, record)
        cfg = self.config
        value = metrics.get(cfg.early_stopping_metric)
        if value is None:
            return False
        better = (
            self.best_metric is None
            or (cfg.early_stopping_mode == "min" and value < self.best_metric - cfg.early_stopping_min_delta)
            or (cfg.early_stopping_mode == "max" and value > self.best_metric + cfg.early_stopping_min_delta)
        )
        if better:
            self.best_metric, self.best_step = float(value), self.step
            self.evals_without_improvement = 0
            if self.is_main:
                self._save_best()
        else:
            self.evals_without_improvement += 1
        if cfg.early_stopping_patience and self.evals_without_improvement >= cfg.early_stopping_patience:
            logger.info(
                "early stopping at step %d (best %s at step %s)", self.step, self.best_metric, self.best_step
            )
            self.stopped_early = True
            return True
        return False

    # --- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "train_seconds": self.train_seconds,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "evals_without_improvement": self.evals_without_improvement,
            "stopped_early": self.stopped_early,
            "last_eval": self.last_eval,
            "last_train_loss": self.last_train_loss,
            "total_steps": self.total_steps,
            "world_size": self.world_size,
            "config": self.config.model_dump(mode="json"),
        }

    def _checkpoint(self) -> None:
        assert self.optimizer is not None
        loaders = self._gather_loader_states()
        if self.is_main:
            path = save_checkpoint(
                self.checkpoint_dir,
                self.step,
                model=self.model,
                optimizer=self.optimizer,
                state=self._state(),
                extra_files={f"loader-rank{r}.json": s for r, s in enumerate(loaders)},
                keep=self.config.keep_checkpoints,
            )
            self._emit("on_checkpoint", self, path)
        if self.distributed:
            dist.barrier()

    def _maybe_resume(self) -> int | None:
        path = latest_checkpoint(self.checkpoint_dir)
        if path is None:
            return None
        assert self.optimizer is not None
        state = load_checkpoint(path, model=self.model, optimizer=self.optimizer)
        if state.get("world_size", 1) != self.world_size:
            raise TrainingError(
                f"checkpoint {path} was written by {state.get('world_size')} ranks, not {self.world_size}"
            )
        from gpt2_agent.training.checkpoint import read_extra

        self.train_data.load_state_dict(read_extra(path, f"loader-rank{self.rank}.json"))
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self.train_seconds = float(state["train_seconds"])
        self.best_metric = state["best_metric"]
        self.best_step = state["best_step"]
        self.evals_without_improvement = int(state["evals_without_improvement"])
        self.stopped_early = bool(state["stopped_early"])
        self.last_eval = dict(state.get("last_eval") or {})
        self.last_train_loss = float(state.get("last_train_loss", float("nan")))
        logger.info("resumed from %s (step %d)", path, self.step)
        return self.step

    def _gather_loader_states(self) -> list[dict[str, Any]]:
        mine = self.train_data.state_dict()
        if not self.distributed:
            return [mine]
        # JSON bytes through a tensor all-gather (all_gather_object would pickle).
        data = torch.frombuffer(bytearray(json.dumps(mine).encode()), dtype=torch.uint8)
        size = torch.tensor([data.numel()], dtype=torch.long)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size)
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[: data.numel()] = data
        gathered = [torch.zeros_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded)
        out: list[dict[str, Any]] = []
        for tensor, n in zip(gathered, sizes, strict=True):
            out.append(json.loads(bytes(tensor[: int(n.item())].tolist()).decode()))
        return out

    def _save_best(self) -> None:
        path = self.out_dir / BEST_FILE
        tmp = path.with_name(path.name + ".tmp")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_model_weights(self.model, str(tmp))
        tmp.replace(path)

    def _restore_best(self) -> None:
        path = self.out_dir / BEST_FILE
        if not (self.config.restore_best and self.config.early_stopping_patience and path.is_file()):
            return
        if self.best_step is not None and self.best_step != self.step:
            load_model_weights(self.model, str(path))
            logger.info("restored the best weights (step %s)", self.best_step)

    # --- helpers -------------------------------------------------------------------------------
    def _total_steps(self) -> int:
        cfg = self.config
        per_epoch = len(self.train_data)
        if per_epoch == 0:
            raise TrainingError("the training data is empty: no batch to train on")
        if cfg.max_steps is not None:
            return cfg.max_steps
        assert cfg.epochs is not None
        return max(1, math.ceil(cfg.epochs * per_epoch / cfg.grad_accum))

    def _warmup_steps(self) -> int:
        return self.config.warmup_steps or int(self.config.warmup_ratio * self.total_steps)

    def _epochs_done(self) -> float:
        return self.step * self.config.grad_accum / max(len(self.train_data), 1)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        groups = _decay_groups(self.model, cfg.weight_decay)
        kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "eps": cfg.eps}
        # The fused kernel updates each parameter in one pass; the default CPU path runs a dozen
        # element-wise ops per parameter, which costs seconds per step on a busy 2-core machine.
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.AdamW(groups, **kwargs)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, batch: Batch) -> Batch:
        if self.device.type == "cpu":
            return batch
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _batch_iterator(self) -> Iterator[Batch]:
        empty_in_a_row = 0
        while True:
            got = False
            for batch in self.train_data:
                got = True
                yield batch
            # An epoch may legitimately be empty right after resuming at its very end.
            empty_in_a_row = 0 if got else empty_in_a_row + 1
            if empty_in_a_row > 1:
                raise TrainingError("the training data yields no batches")

    def _emit(self, event: str, *args: Any) -> None:
        assert event in EVENTS
        if not self.is_main:
            return
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    def _agree(self, flag: bool) -> bool:
        """All ranks continue only if every rank wants to (rank 0 runs the callbacks)."""
        if not self.distributed:
            return flag
        t = torch.tensor([1 if flag else 0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % (2**32))
        torch.manual_seed(seed)


__all__ = [
    "BEST_FILE",
    "CHECKPOINT_DIR",
    "METRICS_FILE",
    "FitResult",
    "LossFn",
    "Trainer",
    "TrainerConfig",
    "TrainingCancelled",
    "TrainingError",
    "bf16_supported",
    "default_loss",
    "lr_at",
    "resolve_precision",
]
