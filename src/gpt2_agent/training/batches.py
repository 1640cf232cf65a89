"""In-memory examples as padded batches, seeded, split across ranks, resumable.

The trainer reads any *batch source*: an iterable whose iteration yields the rest of the current
epoch as ``dict[str, Tensor]`` batches, with ``__len__`` (batches per epoch) and a
JSON-serialisable ``state_dict()`` / ``load_state_dict()``. :class:`TensorBatches` is the one for
classification, tagging and NLU data that fits in memory; ``shards.BlockBatches`` is the one for
language-model corpora on disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from gpt2_agent.modeling.losses import IGNORE_INDEX

Batch = dict[str, torch.Tensor]


@runtime_checkable
class BatchSource(Protocol):
    """What the trainer iterates: epochs of batches, with a resumable position."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# Padding value of each sequence feature; anything else pads with 0.
DEFAULT_PAD_VALUES = {"attention_mask": 0, "labels": IGNORE_INDEX, "slot_labels": IGNORE_INDEX}
# Sequence features holding real numbers (the rest are ids and become int64).
FLOAT_FEATURES = frozenset({"sparse_weights"})


class TensorBatches:
    """Batches of in-memory examples, padded to the longest example of each batch.

    :param features: name → one value per example: a list of token ids (variable length, padded
        per batch) or a scalar (class index). ``attention_mask`` is added when absent.
    :param batch_size: examples per batch (per rank).
    :param pad_token_id: padding for ``input_ids``; see ``DEFAULT_PAD_VALUES`` for the others.
    :param shuffle: reshuffle every epoch with a generator seeded by ``(seed, epoch)``.
    :param rank: this process's rank; ranks take disjoint, equally long slices of each epoch.
    :param group_by_length: within windows of 64 batches, batch similar lengths together (less
        padding, so fewer wasted FLOPs); the batch order is shuffled again afterwards.
    """

    def __init__(
        self,
        features: Mapping[str, Sequence[Any]],
        *,
        batch_size: int,
        pad_token_id: int,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        group_by_length: bool = False,
    ) -> None:
        if "input_ids" not in features:
            raise ValueError("features must include 'input_ids'")
        sizes = {name: len(values) for name, values in features.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"features have different numbers of examples: {sizes}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive (got {batch_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size) (got rank={rank}, world_size={world_size})")
        self.features = {name: list(values) for name, values in features.items()}
        if "attention_mask" not in self.features:
            self.features["attention_mask"] = [[1] * len(ids) for ids in self.features["input_ids"]]
        self.n_examples = sizes["input_ids"]
        self.batch_size = batch_size
        self.pad_values = {**DEFAULT_PAD_VALUES, "input_ids": pad_token_id}
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.group_by_length = group_by_length
        self.per_rank = self.n_examples // world_size if world_size > 1 else self.n_examples
        self._state: dict[str, int] = {"epoch": 0, "batch": 0}

    def __len__(self) -> int:
        if self.drop_last:
            return self.per_rank // self.batch_size
        return (self.per_rank + self.batch_size - 1) // self.batch_size

    @property
    def epoch(self) -> int:
        return self._state["epoch"]

    def state_dict(self) -> dict[str, Any]:
        """Epoch and number of batches already yielded in it."""
        return dict(self._state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._state = {"epoch": int(state["epoch"]), "batch": int(state["batch"])}

    def _order(self, epoch: int) -> list[list[int]]:
        """This rank's batches (lists of example indices) for ``epoch``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.shuffle:
            order = torch.randperm(self.n_examples, generator=g).tolist()
        else:
            order = list(range(self.n_examples))
        order = order[: self.per_rank * self.world_size][self.rank :: self.world_size]
        if self.group_by_length:
            window = self.batch_size * 64
            lengths = self.features["input_ids"]
            order = [
                i
                for start in range(0, len(order), window)
                for i in sorted(order[start : start + window], key=lambda i: len(lengths[i]))
            ]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.group_by_length and self.shuffle:
            perm = torch.randperm(len(batches), generator=g).tolist()
            batches = [batches[i] for i in perm]
        return batches

    def collate(self, indices: Sequence[int]) -> Batch:
        """Stack the examples ``indices`` into one padded batch."""
        batch: Batch = {}
        for name, values in self.features.items():
            rows = [values[i] for i in indices]
            if isinstance(rows[0], (list, tuple)):
                width = max(len(r) for r in rows)
                pad = self.pad_values.get(name, 0)
                batch[name] = torch.tensor(
                    [list(r) + [pad] * (width - len(r)) for r in rows],
                    dtype=torch.float32 if name in FLOAT_FEATURES else torch.long,
                )
            else:
                batch[name] = torch.tensor(rows)
        return batch

    def __iter__(self) -> Iterator[Batch]:
        state = self._state
        batches = self._order(state["epoch"])
        while state["batch"] < len(batches):
            indices = batches[state["batch"]]
            state["batch"] += 1
            yield self.collate(indices)
        self._state = {"epoch": state["epoch"] + 1, "batch": 0}


def batch_tokens(batch: Mapping[str, torch.Tensor]) -> int:
    """Tokens the model processes for ``batch`` (padding included: it costs the same FLOPs)."""
    ids = batch.get("input_ids")
    return int(ids.numel()) if ids is not None else 0


__all__ = ["DEFAULT_PAD_VALUES", "FLOAT_FEATURES", "Batch", "BatchSource", "TensorBatches", "batch_tokens"]
