"""Text clean-up that keeps character offsets, and language detection.

Every entity offset the parser returns points into the text the user sent. So the model and the
extractors read a *normalised copy* of exactly the same length: full-width ASCII forms
(``１２３４５``, ``＄``, ``＠``) become ASCII, the ideographic space becomes a space, and control or
format characters (tabs, zero-width joiners, bidi marks) become spaces. Nothing is inserted or
removed, so ``normalized[i]`` always corresponds to ``text[i]``.
"""

from __future__ import annotations

import re
import unicodedata

_FULLWIDTH_START, _FULLWIDTH_END = 0xFF01, 0xFF5E  # ！ .. ～ map to ! .. ~
_FULLWIDTH_OFFSET = 0xFEE0
_EXTRA = {
    0x3000: " ",  # ideographic space
    0xFFE5: "¥",  # fullwidth yen sign
    0xFFE0: "¢",
    0xFFE1: "£",
}
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def _build_table() -> dict[int, str]:
    table = {code: chr(code - _FULLWIDTH_OFFSET) for code in range(_FULLWIDTH_START, _FULLWIDTH_END + 1)}
    table.update(_EXTRA)
    return table


_TABLE = _build_table()


def normalize(text: str) -> str:
    """Full-width forms → ASCII, control and format characters → spaces; same length as ``text``."""
    out = []
    for ch in text:
        mapped = _TABLE.get(ord(ch))
        if mapped is not None:
            out.append(mapped)
            continue
        category = unicodedata.category(ch)
        # Cc: controls (tab, newline, NUL...), Cf: format (zero-width, bidi), Cs: lone surrogates.
        if category in ("Cc", "Cf", "Cs", "Co", "Cn") and ch != " ":
            out.append(" ")
        else:
            out.append(ch)
    result = "".join(out)
    assert len(result) == len(text)
    return result


def detect_lang(text: str) -> str | None:
    """``"zh"`` if the text has Chinese characters, ``"en"`` if it has Latin words, else ``None``.

    Mixed text (``帮我 audit 一下 66120``) counts as Chinese: a user who writes any Chinese is
    answered in Chinese. Digits, punctuation and emoji alone say nothing (``None``).
    """
    if _CJK.search(text):
        return "zh"
    if _LATIN_WORD.search(text):
        return "en"
    return None


__all__ = ["detect_lang", "normalize"]
