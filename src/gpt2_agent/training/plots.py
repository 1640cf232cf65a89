"""PNG plots of a run: loss curves, confusion matrix, reliability diagram.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly, never through
``pyplot``: no global backend state, no display needed, safe in threads and servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gpt2_agent.training.callbacks import read_jsonl


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=110)
    return out


def plot_loss_curves(metrics_file: str | Path, out: str | Path) -> Path:
    """Training loss per step (and a smoothed line) with validation loss at each evaluation."""
    records = read_jsonl(metrics_file)
    train = [(r["step"], r["loss"]) for r in records if r.get("split") == "train" and "loss" in r]
    val = [(r["step"], r["loss"]) for r in records if r.get("split") == "val" and "loss" in r]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    if train:
        steps, losses = zip(*train, strict=True)
        ax.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="train")
        if len(losses) >= 10:
            window = max(len(losses) // 20, 2)
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, color="#08519c", linewidth=1.5, label="train (smoothed)")
    if val:
        steps, losses = zip(*val, strict=True)
        ax.plot(steps, losses, "o-", color="#e6550d", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, out)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], out: str | Path) -> Path:
    """Counts with true labels as rows and predictions as columns."""
    cm = np.asarray(matrix)
    size = max(4.0, 0.6 * len(labels) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > threshold else "black",
            )
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return _save(fig, out)


def plot_reliability(calibration: dict[str, Any], out: str | Path) -> Path:
    """Accuracy against confidence per bin (a calibrated model sits on the diagonal)."""
    bins = calibration["bins"]
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    centers = [(b["lower"] + b["upper"]) / 2 for b in bins if b["count"]]
    accuracy = [b["accuracy"] for b in bins if b["count"]]
    confidence = [b["confidence"] for b in bins if b["count"]]
    width = 1.0 / max(len(bins), 1)
    ax.bar(centers, accuracy, width=width * 0.9, color="#3182bd", alpha=0.8, label="accuracy")
    ax.plot(confidence, accuracy, "o", color="#e6550d", label="mean confidence")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {calibration['ece']:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return _save(fig, out)


__all__ = ["plot_confusion_matrix", "plot_loss_curves", "plot_reliability"]
