"""Entity values in canonical form: amounts as two-decimal strings, ISO currency codes, plain ids.

``normalize_value(entity, raw)`` is what the parser puts in an entity's ``value``; it returns
``None`` when ``raw`` cannot be such a value (a model span "pay" tagged as an amount), and the
parser then drops the span. Examples::

    normalize_value("amount", "4,500")      -> "4500.00"
    normalize_value("amount", "1288.5元")   -> "1288.50"
    normalize_value("amount", "1.2万")      -> "12000.00"
    normalize_value("amount", "三千五")     -> "3500.00"
    normalize_value("currency", "块")       -> "CNY"
    normalize_value("order_no", "#６６１２０") -> "66120"
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from gpt2_agent.nlu.text import normalize

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")  # NUMERIC(14, 2), like the payment ledger

# Surface forms of currencies (lower-case, after full-width folding) → ISO 4217 code.
CURRENCY_WORDS: dict[str, str] = {
    "元": "CNY", "块": "CNY", "块钱": "CNY", "圆": "CNY", "人民币": "CNY", "rmb": "CNY", "yuan": "CNY",
    "cny": "CNY", "¥": "CNY", "￥": "CNY", "rmb¥": "CNY", "kuai": "CNY",
    "$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "美元": "USD",
    "美金": "USD", "刀": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR", "欧元": "EUR",
    "£": "GBP", "gbp": "GBP", "pound": "GBP", "pounds": "GBP", "英镑": "GBP",
    "hkd": "HKD", "hk$": "HKD", "港币": "HKD", "港元": "HKD",
    "jpy": "JPY", "yen": "JPY", "日元": "JPY",
}  # fmt: skip
CURRENCY_CODES = frozenset(CURRENCY_WORDS.values())

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3, "四": 4,
              "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8,
              "九": 9, "玖": 9}  # fmt: skip
_CN_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_CN_BIG = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}
_SUFFIX_MULTIPLIERS = {"k": 1000, "千": 1000, "w": 10_000, "万": 10_000, "萬": 10_000, "亿": 100_000_000}
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_GROUPED = re.compile(r"^\d{1,3}(?:[,，]\d{3})+(?:\.\d+)?$")
_AMOUNT_NOISE = re.compile(
    r"(?i)(rmb|cny|usd|eur|gbp|hkd|jpy|us\$|hk\$|yuan|kuai|dollars?|euros?|pounds?|yen|"
    r"人民币|块钱|美元|美金|欧元|英镑|港币|港元|日元|元整|元|块|圆|[¥￥$€£])"
)
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_DIGITS = re.compile(r"\d+")


def normalize_currency(raw: str) -> str | None:
    """``"块"`` → ``"CNY"``, ``"US$"`` → ``"USD"``; None if not a currency we know."""
    key = normalize(raw).strip().lower()
    if key.upper() in CURRENCY_CODES:
        return key.upper()
    return CURRENCY_WORDS.get(key)


def currency_of_amount(raw: str) -> str | None:
    """The currency written inside an amount span (``"$20"`` → ``"USD"``), if any."""
    match = _AMOUNT_NOISE.search(normalize(raw))
    return normalize_currency(match.group(0)) if match else None


def _chinese_number(text: str) -> int | None:
    """``"三千五"`` → 3500, ``"一万二千"`` → 12000, ``"十五"`` → 15; None if not a Chinese numeral."""
    if not text or any(ch not in _CN_DIGITS and ch not in _CN_UNITS and ch not in _CN_BIG for ch in text):
        return None
    total, section, digit = 0, 0, None
    last_unit = 1
    for ch in text:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        elif ch in _CN_UNITS:
            unit = _CN_UNITS[ch]
            section += (1 if digit is None else digit) * unit
            digit, last_unit = None, unit
        else:
            big = _CN_BIG[ch]
            total += (section + (digit or 0)) * big
            section, digit, last_unit = 0, None, big
    if digit is not None:
        # "三千五" means 3500: a trailing digit counts in the unit below the last one.
        section += digit * (last_unit // 10 if last_unit >= 10 else 1)
    return total + section


def parse_amount(raw: str) -> Decimal | None:
    """An amount as a positive Decimal rounded to cents, or None.

    Accepts ``4500``, ``4,500``, ``1288.5``, ``1288.5元``, ``¥1,288.50``, ``$20``, ``1.2万``, ``5k``,
    ``三千五``, ``两万``.
    """
    text = _AMOUNT_NOISE.sub("", normalize(raw)).strip().replace(" ", "").replace("_", "")
    text = text.rstrip("整").lstrip("+")
    if not text:
        return None
    multiplier = 1
    if len(text) > 1 and text[-1].lower() in _SUFFIX_MULTIPLIERS and (text[-2].isdigit() or text[-2] == "."):
        multiplier = _SUFFIX_MULTIPLIERS[text[-1].lower()]
        text = text[:-1]
    if _GROUPED.match(text):
        text = text.replace(",", "").replace("，", "")
    if _NUMBER.match(text):
        try:
            value = Decimal(text) * multiplier
        except InvalidOperation:
            return None
    else:
        number = _chinese_number(text)
        if number is None:
            return None
        value = Decimal(number) * multiplier
    if value <= 0 or value > MAX_AMOUNT:
        return None
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def format_amount(value: Decimal) -> str:
    """``Decimal("5")`` → ``"5.00"``."""
    return f"{value.quantize(CENT):f}"


def normalize_value(entity: str, raw: str) -> str | None:
    """The canonical value of an entity span, or None when the span cannot hold that entity."""
    text = normalize(raw).strip()
    if not text:
        return None
    if entity == "amount":
        amount = parse_amount(text)
        return None if amount is None else format_amount(amount)
    if entity == "currency":
        return normalize_currency(text)
    if entity in ("order_no", "task_id"):
        digits = _DIGITS.findall(text)
        if len(digits) != 1 or len(digits[0]) > 12:
            return None
        return digits[0].lstrip("0") or "0"
    if entity == "email":
        value = text.strip("<>()[]\"'.,;:")
        if not _EMAIL.match(value):
            return None
        local, domain = value.rsplit("@", 1)
        return f"{local}@{domain.lower()}"  # domains are case-insensitive, local parts need not be
    if entity == "file_name":
        value = text.strip("\"'“”‘’「」《》()[]<>,;:，。")
        return value or None
    return text


__all__ = [
    "CURRENCY_CODES",
    "CURRENCY_WORDS",
    "currency_of_amount",
    "format_amount",
    "normalize_currency",
    "normalize_value",
    "parse_amount",
]
