"""Tokenized corpora on disk as memory-mapped shards, and a resumable block stream over them.

Layout of a shard folder (nanoGPT's ``train.bin``, split into files of bounded size)::

    index.json            dtype, vocabulary, token and document counts, the shard list
    shard-00000.bin       raw token ids (uint16 when the vocabulary fits, else uint32)
    shard-00001.bin       ...
    documents.bin         uint64 start offset of every document in the concatenated stream

Documents are concatenated with ``<|endoftext|>`` after each one, and training reads fixed
blocks of ``block_size + 1`` tokens (inputs and next-token targets) across document and shard
boundaries. The writer and the reader both use memory bounded by the shard buffer and the
shuffle buffer, never by the size of the corpus.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

INDEX_FILE = "index.json"
DOCUMENTS_FILE = "documents.bin"
FORMAT_VERSION = 1
DEFAULT_SHARD_TOKENS = 1 << 25  # 32 Mi tokens: 64 MiB per uint16 shard


class ShardError(ValueError):
    """A shard folder is missing, incomplete or inconsistent."""


@dataclass
class ShardInfo:
    """One token file of a shard folder."""

    file: str
    n_tokens: int


@dataclass
class ShardIndex:
    """Contents of ``index.json``."""

    dtype: str
    vocab_size: int
    eos_token_id: int
    n_tokens: int = 0
    n_documents: int = 0
    shards: list[ShardInfo] = field(default_factory=list)
    documents_file: str = DOCUMENTS_FILE
    tokenizer: str | None = None
    version: int = FORMAT_VERSION

    @classmethod
    def read(cls, folder: str | Path) -> ShardIndex:
        """Read and check ``folder/index.json``."""
        path = Path(folder) / INDEX_FILE
        if not path.is_file():
            raise ShardError(f"no {INDEX_FILE} in {folder} (not a shard folder, or writing never finished)")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw["shards"] = [ShardInfo(**s) for s in raw["shards"]]
            index = cls(**raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise ShardError(f"{path} is not a valid shard index: {exc}") from exc
        if index.version != FORMAT_VERSION:
            raise ShardError(f"{path}: unsupported shard format version {index.version}")
        return index


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """uint16 when every id fits (vocabularies up to 65,536), else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


class ShardWriter:
    """Append documents (lists of token ids) to a shard folder with a fixed-size buffer.

    Use as a context manager, or call :meth:`close`; ``index.json`` is written last, atomically,
    so a folder without it is recognisably unfinished.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        vocab_size: int,
        eos_token_id: int,
        shard_tokens: int = DEFAULT_SHARD_TOKENS,
        tokenizer_name: str | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if (self.out_dir / INDEX_FILE).exists():
            raise ShardError(f"{self.out_dir} already holds shards; choose an empty folder")
        self.dtype = token_dtype(vocab_size)
        self.index = ShardIndex(
            dtype=self.dtype.name, vocab_size=vocab_size, eos_token_id=eos_token_id, tokenizer=tokenizer_name
        )
        self._buffer = np.empty(shard_tokens, dtype=self.dtype)
        self._fill = 0
        self._doc_starts: list[int] = []
        self._docs = open(self.out_dir / DOCUMENTS_FILE, "wb")  # noqa: SIM115 (closed in close())
        self._closed = False

    def add(self, ids: Sequence[int] | np.ndarray) -> None:
        """Append one document; an end-of-text token is added after it."""
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.index.vocab_size):
            raise ShardError(f"token id out of range for vocab_size={self.index.vocab_size}")
        self._doc_starts.append(self.index.n_tokens)
        self.index.n_documents += 1
        self._append(arr.astype(self.dtype, copy=False))
        self._append(np.array([self.index.eos_token_id], dtype=self.dtype))
        if len(self._doc_starts) >= 65536:
            self._flush_docs()

    def _append(self, arr: np.ndarray) -> None:
        pos = 0
        while pos < arr.size:
            take = min(arr.size - pos, self._buffer.size - self._fill)
            self._buffer[self._fill : self._fill + take] = arr[pos : pos + take]
            self._fill += take
            pos += take
            self.index.n_tokens += take
            if self._fill == self._buffer.size:
                self._flush_shard()

    def _flush_shard(self) -> None:
        if self._fill == 0:
            return
        name = f"shard-{len(self.index.shards):05d}.bin"
        with open(self.out_dir / name, "wb") as fh:
            fh.write(self._buffer[: self._fill].tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        self.index.shards.append(ShardInfo(file=name, n_tokens=self._fill))
        self._fill = 0

    def _flush_docs(self) -> None:
        if self._doc_starts:
            self._docs.write(np.asarray(self._doc_starts, dtype=np.uint64).tobytes())
            self._doc_starts.clear()

    def close(self) -> ShardIndex:
        """Flush everything and write ``index.json``; returns the index."""
        if self._closed:
            return self.index
        self._flush_shard()
        self._flush_docs()
        self._docs.close()
        tmp = self.out_dir / (INDEX_FILE + ".tmp")
        payload = asdict(self.index)
        tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        os.replace(tmp, self.out_dir / INDEX_FILE)
        self._closed = True
        self._buffer = np.empty(0, dtype=self.dtype)
        return self.index

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._docs.close()


def write_shards(
    texts: Iterable[str],
    tokenizer: Any,
    out_dir: str | Path,
    *,
    batch_size: int = 512,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> ShardIndex:
    """Tokenize ``texts`` (streamed in batches) into a shard folder.

    :param tokenizer: a ``PreTrainedTokenizerFast`` (its Rust backend encodes whole batches).
    :param batch_size: texts encoded per call; the only per-batch memory besides the shard buffer.
    """
    backend = tokenizer.backend_tokenizer
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ShardError("the tokenizer has no end-of-text token")
    with ShardWriter(
        out_dir,
        vocab_size=len(tokenizer),
        eos_token_id=eos,
        shard_tokens=shard_tokens,
        tokenizer_name=str(getattr(tokenizer, "name_or_path", "") or ""),
    ) as writer:
        batch: list[str] = []
        for text in texts:
            batch.append(text)
            if len(batch) >= batch_size:
                _encode_into(writer, backend, batch)
                batch = []
        if batch:
            _encode_into(writer, backend, batch)
    logger.info(
        "wrote %d tokens of %d documents to %s", writer.index.n_tokens, writer.index.n_documents, out_dir
    )
    return writer.index


def _encode_into(writer: ShardWriter, backend: Any, batch: list[str]) -> None:
    for encoding in backend.encode_batch_fast(batch, add_special_tokens=False):
        writer.add(encoding.ids)


class ShardedTokens:
    """Read-only view of a shard folder as one long token array (memory-mapped, nothing loaded)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.index = ShardIndex.read(self.folder)
        self.dtype = np.dtype(self.index.dtype)
        self._maps: list[np.ndarray] = []
        starts = [0]
        for shard in self.index.shards:
            path = self.folder / shard.file
            expected = shard.n_tokens * self.dtype.itemsize
            if not path.is_file() or path.stat().st_size != expected:
                raise ShardError(f"shard file {path} is missing or truncated (expected {expected} bytes)")
            self._maps.append(np.memmap(path, dtype=self.dtype, mode="r", shape=(shard.n_tokens,)))
            starts.append(starts[-1] + shard.n_tokens)
        self._starts = np.asarray(starts, dtype=np.int64)
        if int(self._starts[-1]) != self.index.n_tokens:
            raise ShardError(f"{self.folder}: shard sizes do not add up to n_tokens={self.index.n_tokens}")

    def __len__(self) -> int:
        return self.index.n_tokens

    def read(self, start: int, end: int) -> np.ndarray:
        """Tokens ``[start, end)`` of the concatenated stream (copied, across shard borders)."""
        if not 0 <= start <= end <= len(self):
            raise IndexError(f"token range [{start}, {end}) outside 0..{len(self)}")
        parts = []
        shard = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = start
        while pos < end:
            base = int(self._starts[shard])
            stop = min(end, int(self._starts[shard + 1]))
            parts.append(self._maps[shard][pos - base : stop - base])
            pos = stop
            shard += 1
        return np.concatenate(parts) if len(parts) != 1 else np.array(parts[0])

    def document_starts(self) -> np.ndarray:
        """Start offset of every document (memory-mapped)."""
        path = self.folder / self.index.documents_file
        return np.memmap(path, dtype=np.uint64, mode="r", shape=(self.index.n_documents,))


class BlockStream:
    """Fixed-length blocks of ``block_size + 1`` tokens, shuffled, split across ranks, resumable.

    Order within an epoch: the blocks are cut into windows of ``buffer_size`` consecutive blocks,
    the windows are visited in a seeded random order, and a shuffle buffer of ``buffer_size``
    blocks mixes them further. Element ``k`` of that stream goes to rank ``k % world_size`` (the
    tail that does not divide evenly is dropped so every rank sees the same count), so ranks
    never overlap. The state (epoch, position, buffer, generator) is JSON-serialisable, and
    resuming from :meth:`state_dict` yields exactly what the uninterrupted stream would have.

    Iterating yields the rest of the current epoch; the next iteration starts the next epoch.
    """

    def __init__(
        self,
        tokens: ShardedTokens | str | Path,
        *,
        block_size: int,
        seed: int = 0,
        shuffle: bool = True,
        buffer_size: int = 1024,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.tokens = tokens if isinstance(tokens, ShardedTokens) else ShardedTokens(tokens)
        if block_size < 1:
            raise ValueError(f"block_size must be positive (got {block_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size) (got rank={rank}, world_size={world_size})")
        self.block_size = block_size
        self.seed = seed
        self.shuffle = shuffle
        self.buffer_size = max(1, buffer_size)
        self.rank = rank
        self.world_size = world_size
        self.n_blocks = max(0, (len(self.tokens) - 1) // block_size)
        self.blocks_per_rank = self.n_blocks // world_size
        if self.blocks_per_rank == 0:
            raise ShardError(
                f"{self.tokens.folder}: {len(self.tokens)} tokens make no block of {block_size + 1} "
                f"tokens per rank (world_size={world_size})"
            )
        self._state = self._fresh_state(0)

    def __len__(self) -> int:
        """Blocks this rank sees per epoch."""
        return self.blocks_per_rank

    # --- state -------------------------------------------------------------------------------
    def _fresh_state(self, epoch: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        return {"epoch": epoch, "taken": 0, "emitted": 0, "buffer": [], "rng": rng.bit_generator.state}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable position: epoch, blocks taken from the source, buffer, generator."""
        return json.loads(json.dumps(self._state))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a state returned by :meth:`state_dict`."""
        missing = {"epoch", "taken", "emitted", "buffer", "rng"} - set(state)
        if missing:
            raise ShardError(f"block stream state lacks {sorted(missing)}")
        self._state = json.loads(json.dumps(state))

    @property
    def epoch(self) -> int:
        return int(self._state["epoch"])

    # --- order -------------------------------------------------------------------------------
    def _source(self, epoch: int) -> Iterator[int]:
        """This rank's block ids for ``epoch``, before the shuffle buffer."""
        usable = self.blocks_per_rank * self.world_size
        window = self.buffer_size
        n_windows = (usable + window - 1) // window
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch, 1 << 20]).permutation(n_windows)
        else:
            order = np.arange(n_windows)
        k = 0
        for w in order:
            for block in range(int(w) * window, min(usable, (int(w) + 1) * window)):
                if k % self.world_size == self.rank:
                    yield block
                k += 1

    def _block(self, block: int) -> torch.Tensor:
        start = block * self.block_size
        return torch.from_numpy(self.tokens.read(start, start + self.block_size + 1).astype(np.int64))

    def __iter__(self) -> Iterator[torch.Tensor]:
        state = self._state
        source = self._source(state["epoch"])
        for _ in range(state["taken"]):  # skip what the buffer already took (cheap: ids only)
            next(source)
        buffer: list[int] = state["buffer"]
        if not self.shuffle:
            for block in source:
                state["taken"] += 1
                state["emitted"] += 1
                yield self._block(block)
        else:
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
            exhausted = False
            while True:
                while not exhausted and len(buffer) < self.buffer_size:
                    try:
                        buffer.append(next(source))
                        state["taken"] += 1
                    except StopIteration:
                        exhausted = True
                if not buffer:
                    break
                j = int(rng.integers(len(buffer)))
                block = buffer[j]
                buffer[j] = buffer[-1]
                buffer.pop()
                state["rng"] = rng.bit_generator.state
                state["emitted"] += 1
                yield self._block(block)
        self._state = self._fresh_state(state["epoch"] + 1)


class BlockBatches:
    """Batches of ``{"input_ids": (B, T), "labels": (B, T)}`` from a :class:`BlockStream`.

    The last incomplete batch of an epoch is dropped, so every step sees ``batch_size`` blocks
    (and DDP ranks stay in step). The state is the stream's, taken between batches.
    """

    def __init__(self, stream: BlockStream, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive (got {batch_size})")
        if len(stream) < batch_size:
            raise ShardError(f"{len(stream)} blocks per epoch cannot fill one batch of {batch_size}")
        self.stream = stream
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.stream) // self.batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        pending: list[torch.Tensor] = []
        for block in self.stream:
            pending.append(block)
            if len(pending) == self.batch_size:
                stacked = torch.stack(pending)  # (B, T + 1)
                pending = []
                yield {"input_ids": stacked[:, :-1].contiguous(), "labels": stacked[:, 1:].contiguous()}

    def state_dict(self) -> dict[str, Any]:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state)


__all__ = [
    "BlockBatches",
    "BlockStream",
    "ShardError",
    "ShardIndex",
    "ShardInfo",
    "ShardWriter",
    "ShardedTokens",
    "token_dtype",
    "write_shards",
]
