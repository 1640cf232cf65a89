"""Byte-level BPE tokenizer trained on company text with Hugging Face ``tokenizers``.

Byte-level means every string, Chinese, emoji or full-width punctuation included, encodes to
known tokens and decodes back to exactly the same string: no normaliser runs (NFKC would fold
full-width ``，`` into ``,``), and decoding does not "clean up" spaces.

Special tokens: ``<|endoftext|>`` (end of document; also BOS/EOS/UNK, as in GPT-2) and
``[PAD]`` (padding, so classifiers can find the last real token).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "[PAD]"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)


def train_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 8192,
    min_frequency: int = 2,
    out_dir: str | Path | None = None,
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` (any iterable; streamed, not held in memory).

    :param vocab_size: final size including the 256 byte tokens and the special tokens.
    :param min_frequency: pairs seen fewer times are not merged.
    :param out_dir: if given, the tokenizer is written there with ``save_pretrained``.
    :param model_max_length: the model's context, stored so callers can truncate.
    :returns: a ``PreTrainedTokenizerFast`` with ``eos``/``bos``/``unk`` = ``<|endoftext|>`` and
        ``pad`` = ``[PAD]``.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (got {vocab_size})")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps character offsets exact, which slot tagging relies on.
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    count = 0

    def counted() -> Iterator[str]:
        nonlocal count
        for text in texts:
            count += 1
            yield text

    tokenizer.train_from_iterator(counted(), trainer=trainer)
    if count == 0:
        raise ValueError("cannot train a tokenizer on no texts")
    logger.info("trained byte-level BPE on %d texts: %d tokens", count, tokenizer.get_vocab_size())
    fast = wrap_tokenizer(tokenizer, model_max_length=model_max_length)
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def wrap_tokenizer(tokenizer: Tokenizer, *, model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    """Wrap a raw ``tokenizers.Tokenizer`` as a ``PreTrainedTokenizerFast`` with our special tokens."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer folder written by :func:`train_tokenizer` (or any GPT-2 tokenizer folder).

    Original GPT-2 tokenizers have no pad token; ``<|endoftext|>`` is used for padding then.
    """
    path = Path(folder)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {path}")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def decode_exact(tokenizer: PreTrainedTokenizerFast, ids: list[int]) -> str:
    """Decode ``ids`` back to the original text (no space clean-up, specials kept)."""
    return str(tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))


__all__ = [
    "EOS_TOKEN",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "decode_exact",
    "load_tokenizer",
    "train_tokenizer",
    "wrap_tokenizer",
]
