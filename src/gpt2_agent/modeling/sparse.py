"""Sparse n-gram features for the intent head: TF-IDF of word and character n-grams.

The NLU model reads each utterance twice: the GPT-2 backbone sees its BPE tokens, and a sparse
bag of word 1-2-grams and character 2-5-grams (within word boundaries) feeds a linear layer whose
logits are added to the intent head's. This is the layout of Rasa's DIET (sparse count features
beside dense ones): n-grams carry exact wording and misspellings well from a few thousand examples,
the transformer carries word order and context, and together they beat either alone.

The weighting is scikit-learn's ``TfidfVectorizer(sublinear_tf=True)``: ``(1 + log tf) * idf``
with ``idf = ln((1 + n) / (1 + df)) + 1``, each block (words, characters) scaled to unit length.
The fitted vocabulary and idf are stored as JSON next to the weights (``sparse_features.json``),
never pickled, so a model folder stays self-contained.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

SPARSE_FEATURES_FILE = "sparse_features.json"
FORMAT_VERSION = 1
PAD_INDEX = 0  # index 0 is padding; feature i is stored at i + 1

_WORD = re.compile(r"(?u)\b\w\w+\b")


def _word_ngrams(text: str, sizes: tuple[int, int]) -> list[str]:
    words = _WORD.findall(text)
    low, high = sizes
    return [
        "w:" + " ".join(words[i : i + n]) for n in range(low, high + 1) for i in range(len(words) - n + 1)
    ]


def _char_ngrams(text: str, sizes: tuple[int, int]) -> list[str]:
    """Character n-grams inside each whitespace-separated word padded with spaces (``char_wb``)."""
    low, high = sizes
    out: list[str] = []
    for word in text.split():
        padded = f" {word} "
        for n in range(low, high + 1):
            if len(padded) < n:
                break
            out.extend("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


class NgramFeaturizer:
    """Fitted TF-IDF vocabulary of word and character n-grams.

    :param terms: the vocabulary in index order (``w:`` word n-grams, ``c:`` character n-grams).
    :param idf: inverse document frequency of each term.
    """

    def __init__(
        self,
        terms: Sequence[str],
        idf: Sequence[float],
        *,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
    ) -> None:
        if len(terms) != len(idf):
            raise ValueError(f"{len(terms)} terms but {len(idf)} idf values")
        self.terms = list(terms)
        self.idf = [float(v) for v in idf]
        self.index = {term: i for i, term in enumerate(self.terms)}
        self.word_ngrams = (int(word_ngrams[0]), int(word_ngrams[1]))
        self.char_ngrams = (int(char_ngrams[0]), int(char_ngrams[1]))

    @property
    def size(self) -> int:
        """Number of features (the sparse layer has one more row, for padding)."""
        return len(self.terms)

    @classmethod
    def fit(
        cls,
        texts: Iterable[str],
        *,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        min_df_word: int = 1,
        min_df_char: int = 2,
        max_features: int = 200_000,
    ) -> NgramFeaturizer:
        """Learn the vocabulary and idf from training texts.

        :param min_df_word: keep word n-grams seen in at least this many texts.
        :param min_df_char: the same for character n-grams (rarer ones are mostly noise).
        :param max_features: keep at most this many terms, the most frequent across texts first,
            so the sparse layer's size stays bounded on large corpora.
        """
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            n += 1
            df.update(set(cls._grams(text.lower(), word_ngrams, char_ngrams)))
        if n == 0:
            raise ValueError("cannot fit n-gram features on no texts")
        kept = [
            (term, count)
            for term, count in df.items()
            if count >= (min_df_word if term.startswith("w:") else min_df_char)
        ]
        if len(kept) > max_features:
            kept = sorted(kept, key=lambda tc: (-tc[1], tc[0]))[:max_features]
        kept.sort()
        terms = [t for t, _ in kept]
        idf = [math.log((1 + n) / (1 + c)) + 1.0 for _, c in kept]
        return cls(terms, idf, word_ngrams=word_ngrams, char_ngrams=char_ngrams)

    @staticmethod
    def _grams(text: str, word_ngrams: tuple[int, int], char_ngrams: tuple[int, int]) -> list[str]:
        return _word_ngrams(text, word_ngrams) + _char_ngrams(text, char_ngrams)

    def transform_one(self, text: str) -> tuple[list[int], list[float]]:
        """Feature indices (``+1``, 0 is padding) and TF-IDF weights of one text."""
        lowered = text.lower()
        ids: list[int] = []
        weights: list[float] = []
        for grams in (_word_ngrams(lowered, self.word_ngrams), _char_ngrams(lowered, self.char_ngrams)):
            counts = Counter(self.index[g] for g in grams if g in self.index)
            items = sorted((i, (1.0 + math.log(c)) * self.idf[i]) for i, c in counts.items())
            norm = math.sqrt(sum(w * w for _, w in items)) or 1.0  # each block to unit length
            ids.extend(i + 1 for i, _ in items)
            weights.extend(w / norm for _, w in items)
        return ids, weights

    def features(self, texts: Sequence[str]) -> dict[str, list[list[Any]]]:
        """``sparse_ids`` and ``sparse_weights`` of each text, as lists (training batches pad them)."""
        ids, weights = [], []
        for text in texts:
            i, w = self.transform_one(text)
            ids.append(i)
            weights.append(w)
        return {"sparse_ids": ids, "sparse_weights": weights}

    def tensors(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The same, padded into ``(B, K)`` tensors (index 0 and weight 0 on padding)."""
        feats = self.features(texts)
        width = max((len(r) for r in feats["sparse_ids"]), default=0) or 1
        ids = torch.zeros((len(texts), width), dtype=torch.long)
        weights = torch.zeros((len(texts), width), dtype=torch.float32)
        for row, (i, w) in enumerate(zip(feats["sparse_ids"], feats["sparse_weights"], strict=True)):
            ids[row, : len(i)] = torch.tensor(i, dtype=torch.long)
            weights[row, : len(w)] = torch.tensor(w, dtype=torch.float32)
        return {"sparse_ids": ids, "sparse_weights": weights}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what ``sparse_features.json`` holds)."""
        return {
            "format_version": FORMAT_VERSION,
            "weighting": "sublinear tf * smooth idf, l2 per block",
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "terms": self.terms,
            "idf": self.idf,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NgramFeaturizer:
        """Inverse of :meth:`to_dict`."""
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported sparse feature format {version!r} (this version reads {FORMAT_VERSION})"
            )
        return cls(
            data["terms"],
            data["idf"],
            word_ngrams=tuple(data["word_ngrams"]),
            char_ngrams=tuple(data["char_ngrams"]),
        )

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``sparse_features.json`` into ``folder``."""
        path = Path(folder) / SPARSE_FEATURES_FILE
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> NgramFeaturizer:
        """Read ``sparse_features.json`` from a model folder."""
        path = Path(folder) / SPARSE_FEATURES_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder}: the model reads n-gram features but has no {SPARSE_FEATURES_FILE}"
            )
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


__all__ = ["PAD_INDEX", "SPARSE_FEATURES_FILE", "NgramFeaturizer"]
