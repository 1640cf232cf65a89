"""The micro-batcher on its own (fake snapshots at its seam), the pass planner and the text encoder."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from tests.serving.conftest import order_texts
from transformers import PreTrainedTokenizerFast

from gpt2_agent.serving import MicroBatcher, ServedModel, TextEncoder, plan_passes


@dataclass(eq=False)
class FakeSnapshot:
    """Stands in for a ServedModel: encodes a text as ``[version] * len(text)``."""

    version: int
    passes: list[list[list[int]]] = field(default_factory=list)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [[self.version] * max(1, len(t)) for t in texts]


def run_batch(snapshot: Any, rows: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    snapshot.passes.append([list(r) for r in rows])
    if any(len(r) == 777 for r in rows):
        raise RuntimeError("boom")
    return [(snapshot.version, r[0]) for r in rows]


def make_batcher(current: Any, **kwargs: Any) -> MicroBatcher:
    return MicroBatcher("test", current, run_batch, **kwargs)


def test_plan_passes() -> None:
    assert plan_passes([10] * 20, 32, 512) == [(0, 20)]
    passes = plan_passes([10] * 70, 32, 512)
    assert passes[0][0] == 0 and passes[-1][1] == 70 and all(b - a <= 32 for a, b in passes)
    assert all(passes[i][1] == passes[i + 1][0] for i in range(len(passes) - 1))
    assert plan_passes([5] * 16 + [60] * 16, 32, 64) == [(0, 16), (16, 32)]  # padding 5 → 60 costs more
    assert plan_passes([40] * 16 + [48] * 16, 32, 512) == [(0, 32)]  # a little padding is cheaper
    assert plan_passes([], 32, 512) == []
    assert plan_passes([10] * 20, 32, 512, min_passes=2) == [(0, 10), (10, 20)]  # one per worker
    assert plan_passes([10] * 3, 32, 512, min_passes=4) == [(0, 1), (1, 2), (2, 3)]


def test_snapshot_swap_reencodes_and_never_mixes_versions() -> None:
    old, new = FakeSnapshot(1), FakeSnapshot(2)
    holder = {"current": new}
    batcher = make_batcher(lambda: holder["current"], max_wait_s=0.0)
    try:
        # Encoded by the old version, computed after the swap: re-encoded with the new one.
        snapshot, results = batcher.submit(
            ["abc", "de"], old.encode(["abc", "de"]), cast(ServedModel, old)
        ).result(5)
        assert snapshot is new and results == [(2, 2), (2, 2)]
        assert batcher.stats.reencoded == 2
        assert all(row[0] == 2 for rows in new.passes for row in rows) and not old.passes
    finally:
        batcher.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_round_failure_reaches_its_callers_and_serving_goes_on(workers: int) -> None:
    snap = FakeSnapshot(1)
    batcher = make_batcher(lambda: snap, max_wait_s=0.0, workers=workers)
    try:
        bad = batcher.submit(["x" * 777], snap.encode(["x" * 777]), cast(ServedModel, snap))
        with pytest.raises(RuntimeError, match="boom"):
            bad.result(5)
        _, ok = batcher.submit(["fine"], snap.encode(["fine"]), cast(ServedModel, snap)).result(5)
        assert ok == [(1, 1)]
    finally:
        batcher.close()


@pytest.mark.parametrize("workers", [1, 3])
def test_concurrent_submissions_are_batched_and_answered_in_order(workers: int) -> None:
    snap = FakeSnapshot(3)
    batcher = make_batcher(lambda: snap, max_batch_size=8, max_wait_s=0.2, workers=workers)
    texts = ["a" * n for n in range(1, 41)]
    answers: dict[int, list[Any]] = {}
    barrier = threading.Barrier(len(texts))

    def client(i: int) -> None:
        barrier.wait()
        request = [texts[i], texts[-1 - i]]
        answers[i] = batcher.submit(request, snap.encode(request), cast(ServedModel, snap)).result(10)[1]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert all(answers[i] == [(3, 3), (3, 3)] for i in range(len(texts)))
    assert sum(len(p) for p in snap.passes) == 2 * len(texts)
    assert max(len(p) for p in snap.passes) <= 8 and len(snap.passes) < len(texts)
    for rows in snap.passes:  # each pass is length-sorted, and passes cut at length boundaries
        assert [len(r) for r in rows] == sorted(len(r) for r in rows)


def test_close_finishes_queued_requests() -> None:
    snap = FakeSnapshot(1)
    gate = threading.Event()

    def slow_current() -> Any:
        gate.wait(5)
        return snap

    batcher = make_batcher(slow_current, max_wait_s=0.0)
    futures = [batcher.submit([t], snap.encode([t]), cast(ServedModel, snap)) for t in ("a", "bb", "ccc")]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gate.set()
    closer.join(10)
    assert [f.result(1)[1] for f in futures] == [[(1, 1)], [(1, 1)], [(1, 1)]]


def test_encoder_matches_training_encoding(tokenizer: PreTrainedTokenizerFast) -> None:
    """Same ids as ``tokenizer(text, truncation=True, max_length=..., add_special_tokens=False)``."""
    encode = TextEncoder(tokenizer, max_length=24)
    texts = [*order_texts(30, seed=1), "", " ", "日本語と emoji 🙂", "z" * 300]
    want = tokenizer(texts, truncation=True, max_length=24, add_special_tokens=False)["input_ids"]
    got = encode(texts)
    assert got[len(texts) - 4] == [tokenizer.eos_token_id]  # the empty text
    assert [g for g, t in zip(got, texts, strict=True) if t] == [
        w for w, t in zip(want, texts, strict=True) if t
    ]
    assert max(len(g) for g in got) == 24
