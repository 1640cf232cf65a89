"""Token shards: write, stream fixed blocks, split across ranks, resume mid-epoch."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2_agent.training.shards import (
    BlockBatches,
    BlockStream,
    ShardedTokens,
    ShardError,
    ShardIndex,
    ShardWriter,
    write_shards,
)
from gpt2_agent.training.tokenizer import train_tokenizer

EOS = 0


def _write(folder: Path, n_docs: int = 300, shard_tokens: int = 1000, vocab: int = 500) -> list[list[int]]:
    rng = np.random.default_rng(0)
    docs = [list(rng.integers(1, vocab, size=int(rng.integers(1, 40)))) for _ in range(n_docs)]
    with ShardWriter(folder, vocab_size=vocab, eos_token_id=EOS, shard_tokens=shard_tokens) as writer:
        for doc in docs:
            writer.add(doc)
    return docs


def test_write_and_read_back(tmp_path: Path) -> None:
    docs = _write(tmp_path / "s")
    index = ShardIndex.read(tmp_path / "s")
    assert index.dtype == "uint16" and index.n_documents == len(docs)
    assert len(index.shards) > 3  # small shard size forces several files
    tokens = ShardedTokens(tmp_path / "s")
    expected = np.concatenate([np.array([*d, EOS]) for d in docs])
    assert len(tokens) == expected.size
    np.testing.assert_array_equal(tokens.read(0, len(tokens)), expected)
    np.testing.assert_array_equal(tokens.read(995, 1010), expected[995:1010])  # across a shard border
    starts = tokens.document_starts()
    assert starts[0] == 0 and int(starts[5]) == sum(len(d) + 1 for d in docs[:5])


def test_large_vocabulary_uses_uint32(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "s", vocab_size=70000, eos_token_id=0) as writer:
        writer.add([69999, 12])
    assert ShardIndex.read(tmp_path / "s").dtype == "uint32"
    assert ShardedTokens(tmp_path / "s").read(0, 3).tolist() == [69999, 12, 0]


def test_unfinished_or_truncated_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match=r"index\.json"):
        ShardedTokens(tmp_path)
    _write(tmp_path / "s")
    shard = tmp_path / "s" / "shard-00001.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(ShardError, match=r"shard-00001\.bin"):
        ShardedTokens(tmp_path / "s")


def test_blocks_are_next_token_pairs_and_cover_the_corpus(tmp_path: Path) -> None:
    _write(tmp_path / "s")
    tokens = ShardedTokens(tmp_path / "s")
    stream = BlockStream(tokens, block_size=16, shuffle=False)
    blocks = list(stream)
    assert len(blocks) == len(stream) == (len(tokens) - 1) // 16
    flat = tokens.read(0, len(tokens))
    for i, block in enumerate(blocks):
        np.testing.assert_array_equal(block.numpy(), flat[i * 16 : i * 16 + 17])
    batches = BlockBatches(BlockStream(tokens, block_size=16, shuffle=False), batch_size=4)
    first = next(iter(batches))
    assert first["input_ids"].shape == (4, 16)
    assert torch.equal(first["input_ids"][:, 1:], first["labels"][:, :-1])


def test_shuffle_is_seeded_and_a_permutation(tmp_path: Path) -> None:
    _write(tmp_path / "s")

    def ids(seed: int) -> list[int]:
        stream = BlockStream(tmp_path / "s", block_size=8, seed=seed, buffer_size=16)
        return [int(b[0]) * 10**6 + int(b[1]) for b in stream]

    ordered = [
        int(b[0]) * 10**6 + int(b[1]) for b in BlockStream(tmp_path / "s", block_size=8, shuffle=False)
    ]
    assert ids(1) == ids(1)
    assert ids(1) != ids(2) and ids(1) != ordered
    assert sorted(ids(1)) == sorted(ordered)


def test_ranks_are_disjoint_and_equal_sized(tmp_path: Path) -> None:
    _write(tmp_path / "s")
    seen = []
    for rank in range(3):
        stream = BlockStream(tmp_path / "s", block_size=8, seed=3, rank=rank, world_size=3, buffer_size=10)
        blocks = [tuple(b.tolist()) for b in stream]
        assert len(blocks) == len(stream)
        seen.append(blocks)
    assert len({len(s) for s in seen}) == 1
    assert not set(seen[0]) & set(seen[1]) and not set(seen[1]) & set(seen[2])


@pytest.mark.parametrize("cut", [0, 1, 37, 150])
def test_resume_equals_tail_of_uninterrupted_stream(tmp_path: Path, cut: int) -> None:
    _write(tmp_path / "s")

    def make() -> BlockStream:
        return BlockStream(tmp_path / "s", block_size=8, seed=5, buffer_size=12)

    full_stream = make()
    full = [b.tolist() for b in itertools.chain(full_stream, full_stream)]  # two epochs
    first = make()
    it = iter(first)
    head = [next(it).tolist() for _ in range(cut)]
    state = json.loads(json.dumps(first.state_dict()))  # must survive JSON
    resumed = make()
    resumed.load_state_dict(state)
    tail = [b.tolist() for b in resumed] + [b.tolist() for b in resumed]
    assert head + tail[: len(full) - cut] == full
    assert resumed.epoch == 2


def test_write_shards_from_texts(tmp_path: Path) -> None:
    texts = [f"订单 {i} 已审核 order {i} approved" for i in range(200)]
    tok = train_tokenizer(iter(texts), vocab_size=300, out_dir=tmp_path / "tok")
    index = write_shards(iter(texts), tok, tmp_path / "s", batch_size=17, shard_tokens=500)
    assert index.n_documents == 200
    tokens = ShardedTokens(tmp_path / "s")
    first_doc = tokens.read(0, int(tokens.document_starts()[1]))
    assert tok.decode(first_doc[:-1].tolist()) == texts[0]
    assert int(first_doc[-1]) == tok.eos_token_id
    with pytest.raises(ShardError, match="already holds shards"):
        write_shards(iter(texts), tok, tmp_path / "s")
