"""Build the demo company in memory: customers, accounts, cards, orders, decisions, payments and
messages as numpy arrays and lists, ready to be written by :mod:`gpt2_agent.demo.warehouse`.

Determinism: every random draw comes from one ``numpy.random.Generator`` per concern, spawned from
``SeedSequence(seed)``; nothing reads the clock. Changing how one concern draws (say, messages)
therefore leaves the others unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpt2_agent.demo import texts
from gpt2_agent.demo.signals import (
    BoolArray,
    FloatArray,
    IntArray,
    OrderFeatures,
    SignalWeights,
    order_features,
    risk_logit,
    sigmoid,
)

AS_OF = dt.datetime(2026, 10, 31, 18, 0, 0, tzinfo=dt.UTC)
"""The warehouse's "now": every timestamp is before it, card expiry is judged against it."""

HISTORY_DAYS = 365
SHOWCASE_PENDING_CLEAN = "66120"  # pending audit, looks fine, card valid, balance covers it
SHOWCASE_PENDING_RISKY = "12345"  # pending audit, asks to re-route to a forwarding service
SHOWCASE_PAID = "77410"  # approved and paid
SHOWCASE_ORDERS = (SHOWCASE_PENDING_CLEAN, SHOWCASE_PENDING_RISKY, SHOWCASE_PAID)
MIN_ORDERS = 10

_DAY = 86400
PAYMENT_STATUSES = ("paid", "insufficient_balance", "card_expired")


@dataclass
class Company:
    """The generated company. Arrays over orders are in chronological order (index = id - 1)."""

    as_of: dt.datetime
    # customers (index = id - 1); accounts share the customer's id
    customer_name: list[str]
    customer_email: list[str]
    customer_city: list[str]
    customer_address: list[str]
    signup_s: IntArray
    risky_customer: BoolArray  # latent; never written
    balance_cents: IntArray
    # cards
    card_customer: IntArray  # customer index
    card_brand: list[str]
    card_last4: list[str]
    card_expires: list[dt.date]
    # orders
    order_no: list[str]
    order_customer: IntArray
    order_card: IntArray  # card index
    amount_cents: IntArray
    items: list[str]
    item_count: IntArray
    channel: list[str]
    shipping_address: list[str]
    billing_address: list[str]
    created_s: IntArray
    notes: list[str]
    # hidden signals (never written) and the features the reviewers used
    forwarding: BoolArray
    resale: BoolArray
    urgency: BoolArray
    features: OrderFeatures
    logit: FloatArray
    # decisions (only for decided orders)
    decided: BoolArray
    reject: BoolArray
    noise_flipped: BoolArray
    reviewer: list[str]
    decided_s: IntArray
    # payments, in attempt order
    pay_order: IntArray
    pay_status: list[str]
    pay_attempted_s: IntArray
    # messages
    messages: list[dict[str, Any]] = field(default_factory=list)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _address(rng: np.random.Generator, city_idx: int) -> str:
    city, districts = texts.CITIES[city_idx]
    return (
        f"{city}市{_pick(rng, districts)}{_pick(rng, texts.STREETS)}{int(rng.integers(1, 999))}号"
        f"{int(rng.integers(1, 30))}栋{int(rng.integers(101, 2999))}室"
    )


def _customers(n: int, rng: np.random.Generator, as_of_s: int) -> dict[str, Any]:
    risky = rng.random(n) < 0.10
    recent = rng.random(n) < np.where(risky, 0.7, 0.3)
    age = np.where(recent, rng.uniform(1, 60, n), rng.uniform(60, 4 * 365, n)) * _DAY
    signup = (as_of_s - age).astype(np.int64)
    names, emails, cities, addresses = [], [], [], []
    for i in range(n):
        if rng.random() < 0.75:
            sur, sur_py = texts.SURNAMES[int(rng.integers(len(texts.SURNAMES)))]
            giv, giv_py = texts.GIVEN_NAMES[int(rng.integers(len(texts.GIVEN_NAMES)))]
            name, local = sur + giv, f"{giv_py}.{sur_py}"
        else:
            first, last = _pick(rng, texts.ENGLISH_FIRST), _pick(rng, texts.ENGLISH_LAST)
            name, local = f"{first} {last}", f"{first.lower()}.{last.lower()}"
        city_idx = int(rng.integers(len(texts.CITIES)))
        names.append(name)
        # The id suffix keeps e-mail addresses unique.
        emails.append(f"{local}{i + 1}@{_pick(rng, texts.EMAIL_DOMAINS)}")
        cities.append(texts.CITIES[city_idx][0])
        addresses.append(_address(rng, city_idx))
    return {
        "risky": risky,
        "signup": signup,
        "activity": rng.lognormal(0.0, 0.8, n) * np.where(risky, 1.5, 1.0),
        "log_spend": rng.normal(np.log(250.0), 0.7, n),
        "names": names,
        "emails": emails,
        "cities": cities,
        "addresses": addresses,
    }


def _cards(n_customers: int, rng: np.random.Generator, as_of: dt.datetime) -> dict[str, Any]:
    """One or two cards per customer; the first is the one they usually pay with."""
    owner: list[int] = []
    expires: list[dt.date] = []
    primary = np.zeros(n_customers, np.int64)
    secondary = np.full(n_customers, -1, np.int64)
    for c in range(n_customers):
        for slot in range(1 if rng.random() < 0.6 else 2):
            expired_share = 0.07 if slot == 0 else 0.10
            if rng.random() < expired_share:
                days = -int(rng.integers(1, 300))  # ran out during the history window
            else:
                days = int(rng.integers(180, 5 * 365))
            expiry = (as_of + dt.timedelta(days=days)).date()
            # Cards are valid through the last day of their expiry month.
            next_month = (expiry.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            if slot == 0:
                primary[c] = len(owner)
            else:
                secondary[c] = len(owner)
            owner.append(c)
            expires.append(next_month - dt.timedelta(days=1))
    m = len(owner)
    return {
        "owner": np.asarray(owner, np.int64),
        "expires": expires,
        "brand": [_pick(rng, texts.CARD_BRANDS) for _ in range(m)],
        "last4": [f"{int(x):04d}" for x in rng.integers(0, 10000, m)],
        "primary": primary,
        "secondary": secondary,
    }


def _order_times(
    cust: IntArray, signup: IntArray, risky: BoolArray, rng: np.random.Generator, as_of_s: int
) -> IntArray:
    """Creation times: uniform over the customer's window, plus bursts of quick repeat orders."""
    n = len(cust)
    start = np.maximum(signup[cust], as_of_s - HISTORY_DAYS * _DAY)
    t = (start + rng.random(n) * (as_of_s - 120 - start)).astype(np.int64)
    burst = rng.random(n) < np.where(risky[cust], 0.30, 0.04)
    gap = rng.integers(300, 6 * 3600, n)
    order = np.lexsort((t, cust))
    prev_c, prev_t = -1, 0
    for i in order:  # sequential: a burst order follows the (possibly moved) previous one
        if burst[i] and cust[i] == prev_c:
            t[i] = prev_t + gap[i]
        prev_c, prev_t = int(cust[i]), int(t[i])
    # About 1% were placed in the last 8 hours, so some orders still wait for audit or payment.
    recent = rng.random(n) < 0.01
    t = np.where(recent, np.maximum(as_of_s - rng.integers(120, 8 * 3600, n), signup[cust] + 60), t)
    return np.minimum(t, as_of_s - 60)


def _items(amount_cents: IntArray, gift: BoolArray, rng: np.random.Generator) -> tuple[list[str], IntArray]:
    """1-3 item lines per order whose prices add up exactly to its amount, as JSON text."""
    n = len(amount_cents)
    k = rng.integers(1, 4, n)
    active = np.arange(3)[None, :] < k[:, None]  # (n, 3)
    weight = np.where(active, rng.exponential(size=(n, 3)), 0.0)
    cents = np.floor(weight / weight.sum(axis=1, keepdims=True) * amount_cents[:, None]).astype(np.int64)
    cents[:, 0] += amount_cents - cents.sum(axis=1)
    # Name each line after the product whose list price is closest (in log terms) to its share.
    log_prices = np.log([p for _, p in texts.PRODUCTS])
    order = np.argsort(log_prices, kind="stable")
    sorted_lp = log_prices[order]
    target = np.log(np.maximum(cents / 100.0, 1.0)) + rng.normal(0.0, 0.4, (n, 3))
    pos = np.clip(np.searchsorted((sorted_lp[1:] + sorted_lp[:-1]) / 2, target), 0, len(order) - 1)
    product = order[pos]
    gift_pick = rng.integers(0, len(texts.GIFT_CARDS), n)
    qty = rng.integers(1, 4, (n, 3))
    qty = np.where((cents % qty == 0) & (cents >= 300), qty, 1)
    unit = cents // qty
    names = [json.dumps(name, ensure_ascii=False) for name, _ in texts.PRODUCTS]
    gift_names = [json.dumps(name, ensure_ascii=False) for name, _ in texts.GIFT_CARDS]
    out: list[str] = []
    for i in range(n):
        lines = []
        for j in range(int(k[i])):
            name = gift_names[gift_pick[i]] if gift[i] and j == 0 else names[product[i, j]]
            u = int(unit[i, j])
            lines.append(
                f'{{"name": {name}, "qty": {int(qty[i, j])}, "unit_price": "{u // 100}.{u % 100:02d}"}}'
            )
        out.append("[" + ", ".join(lines) + "]")
    return out, np.where(active, qty, 0).sum(axis=1).astype(np.int64)


_NOTE_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "plain": texts.NOTES_PLAIN,
    "forwarding": texts.NOTES_FORWARDING,
    "forwarding_lookalike": texts.NOTES_FORWARDING_LOOKALIKE,
    "resale": texts.NOTES_RESALE,
    "resale_lookalike": texts.NOTES_RESALE_LOOKALIKE,
    "urgency": texts.NOTES_URGENCY,
    "urgency_lookalike": texts.NOTES_URGENCY_LOOKALIKE,
}


def _notes(flags: dict[str, BoolArray], rng: np.random.Generator) -> list[str]:
    """One note per order: the chosen groups' sentences in a random order, one language per note."""
    n = len(next(iter(flags.values())))
    lang = rng.choice(len(texts.LANGS), n, p=np.asarray(texts.LANG_WEIGHTS))
    choice = {g: rng.random(n) for g in _NOTE_GROUPS}
    fills = {
        "fwd": (texts.FORWARDERS, rng.integers(0, len(texts.FORWARDERS), n)),
        "fwd_addr": (texts.FORWARDER_ADDRESSES, rng.integers(0, len(texts.FORWARDER_ADDRESSES), n)),
        "company": (texts.COMPANIES, rng.integers(0, len(texts.COMPANIES), n)),
    }
    code_prefix = rng.integers(0, 4, n)
    code_no = rng.integers(1000, 99999, n)
    qty = rng.integers(5, 60, n)
    shuffle = rng.random(n)
    out: list[str] = []
    for i in range(n):
        groups = [g for g in _NOTE_GROUPS if flags[g][i]]
        if not groups:
            out.append("")
            continue
        values = {key: options[idx[i]] for key, (options, idx) in fills.items()}
        values["code"] = f"{('CN', 'FW', 'SZ', 'GZ')[code_prefix[i]]}{code_no[i]}"
        values["qty"] = str(qty[i])
        parts = []
        for g in groups:
            templates = _NOTE_GROUPS[g][texts.LANGS[lang[i]]]
            parts.append(templates[int(choice[g][i] * len(templates))].format(**values))
        if len(parts) > 1 and shuffle[i] < 0.5:
            parts.reverse()
        out.append(" ".join(parts))
    return out


def build_company(
    n_orders: int,
    *,
    seed: int = 0,
    label_noise: float = 0.05,
    weights: SignalWeights | None = None,
    as_of: dt.datetime = AS_OF,
) -> Company:
    """Generate the whole company in memory (see :mod:`gpt2_agent.demo.warehouse`)."""
    if n_orders < MIN_ORDERS:
        raise ValueError(f"orders must be at least {MIN_ORDERS} (got {n_orders})")
    if not 0.0 <= label_noise <= 0.5:
        raise ValueError(f"label_noise must be between 0 and 0.5 (got {label_noise})")
    if seed < 0:
        raise ValueError(f"seed must be non-negative (got {seed})")
    rc, rk, ro, rn, rd, rp, rm, rx = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8))
    as_of_s = int(as_of.timestamp())
    n = n_orders

    cu = _customers(max(5, n // 6), rc, as_of_s)
    n_c = len(cu["names"])
    cards = _cards(n_c, rk, as_of)

    # --- orders, in chronological order --------------------------------------------------------
    cust = ro.choice(n_c, n, p=cu["activity"] / cu["activity"].sum()).astype(np.int64)
    t = _order_times(cust, cu["signup"], cu["risky"], ro, as_of_s)
    chrono = np.lexsort((np.arange(n), t))
    cust, t = cust[chrono], t[chrono]
    risky = cu["risky"][cust]
    base = np.exp(cu["log_spend"][cust] + ro.normal(0.0, 0.35, n))
    spike = ro.random(n) < np.where(risky, 0.35, 0.15)
    amount = base * np.where(spike, np.exp(ro.uniform(0.9, 2.5, n)), 1.0)
    amount_cents = np.maximum(np.round(amount * 100.0), 500).astype(np.int64)
    mismatch = ro.random(n) < np.where(risky, 0.35, 0.15)
    use_secondary = (ro.random(n) < 0.15) & (cards["secondary"][cust] >= 0)
    card = np.where(use_secondary, cards["secondary"][cust], cards["primary"][cust])
    channel_idx = ro.choice(len(texts.CHANNELS), n, p=np.asarray(texts.CHANNEL_WEIGHTS))

    # --- notes: the text-only signals and their harmless lookalikes -------------------------------
    def draw(p_normal: float, p_risky: float) -> BoolArray:
        return np.asarray(rn.random(n) < np.where(risky, p_risky, p_normal))

    flags = {
        "plain": draw(0.25, 0.15),
        "forwarding": draw(0.15, 0.30),
        "forwarding_lookalike": draw(0.03, 0.03),
        "resale": draw(0.02, 0.15),
        "resale_lookalike": draw(0.02, 0.02),
        "urgency": draw(0.18, 0.35),
        "urgency_lookalike": draw(0.04, 0.04),
    }
    # A note cannot both ask for something and say the opposite.
    for sig in ("forwarding", "resale", "urgency"):
        flags[f"{sig}_lookalike"] &= ~flags[sig]
    gift = flags["resale"] | flags["resale_lookalike"] | (rn.random(n) < 0.02)
    notes = _notes(flags, rn)
    items, item_count = _items(amount_cents, gift, rn)
    billing = [cu["addresses"][c] for c in cust]
    shipping = list(billing)
    for i in np.flatnonzero(mismatch):
        other = _address(rn, int(rn.integers(len(texts.CITIES))))
        shipping[i] = other if other != billing[i] else other + "（代收点）"

    features = order_features(cust, t, amount_cents, cu["signup"][cust], mismatch)
    logit = risk_logit(
        features,
        forwarding=flags["forwarding"],
        resale=flags["resale"],
        urgency=flags["urgency"],
        weights=weights,
    )

    # --- decisions -------------------------------------------------------------------------------
    delay = np.clip(np.exp(rd.normal(np.log(2 * 3600), 1.0, n)), 600, 72 * 3600).astype(np.int64)
    decided_s = t + delay
    decided = decided_s <= as_of_s
    decided[-2:] = False  # the two newest orders are always waiting, whatever the delays
    reject = rd.random(n) < sigmoid(logit)
    flipped = rd.random(n) < label_noise
    reject ^= flipped
    reviewer = [texts.REVIEWERS[int(r)] for r in rd.integers(len(texts.REVIEWERS), size=n)]

    # --- payments: replayed per account in attempt order ------------------------------------------
    attempted_s = decided_s + rp.integers(60, 1800, n)
    pays = np.flatnonzero(decided & ~reject & (attempted_s <= as_of_s))
    pays = pays[np.lexsort((pays, attempted_s[pays]))]
    owed = np.bincount(cust[pays], weights=amount_cents[pays], minlength=n_c)
    underfunded = rp.random(n_c) < 0.15
    factor = np.where(underfunded, rp.uniform(0.3, 1.0, n_c), rp.uniform(1.1, 3.0, n_c))
    balance = (owed * factor + rp.uniform(0, 2000, n_c) * 100).astype(np.int64)
    expiry_s = np.array(
        [int(dt.datetime.combine(d, dt.time.max, dt.UTC).timestamp()) for d in cards["expires"]], np.int64
    )
    status: list[str] = []
    for i in pays:
        c = int(cust[i])
        if attempted_s[i] > expiry_s[card[i]]:
            status.append("card_expired")
        elif balance[c] < amount_cents[i]:
            status.append("insufficient_balance")
        else:
            balance[c] -= amount_cents[i]
            status.append("paid")

    # --- order numbers, with the showcase orders pinned ----------------------------------------------
    pending = np.flatnonzero(~decided)
    clean_ok = [
        i for i in pending if expiry_s[card[i]] > as_of_s + 180 * _DAY and balance[cust[i]] >= amount_cents[i]
    ]
    candidates = clean_ok or list(pending)
    clean = int(min(candidates, key=lambda i: (logit[i], i)))
    risky_i = int(max((i for i in pending if i != clean), key=lambda i: (logit[i], -i)))
    if not flags["forwarding"][risky_i]:
        flags["forwarding"][risky_i] = True
        notes[risky_i] = texts.NOTES_FORWARDING["zh"][0].format(fwd_addr=texts.FORWARDER_ADDRESSES[0])
    paid_idx = [int(pays[k]) for k, s in enumerate(status) if s == "paid"]
    fallback = [i for i in range(n) if decided[i]] or [i for i in range(n) if i not in (clean, risky_i)]
    pool = paid_idx or fallback
    paid_show = pool[len(pool) // 2]
    capacity = max(90000, 2 * n)
    numbers = np.setdiff1d(np.arange(10000, 10000 + capacity), np.array([int(x) for x in SHOWCASE_ORDERS]))
    order_no = [str(int(x)) for x in rx.permutation(numbers)[:n]]
    for idx, no in (
        (clean, SHOWCASE_PENDING_CLEAN),
        (risky_i, SHOWCASE_PENDING_RISKY),
        (paid_show, SHOWCASE_PAID),
    ):
        order_no[idx] = no

    company = Company(
        as_of=as_of,
        customer_name=cu["names"],
        customer_email=cu["emails"],
        customer_city=cu["cities"],
        customer_address=cu["addresses"],
        signup_s=cu["signup"],
        risky_customer=cu["risky"],
        balance_cents=balance,
        card_customer=cards["owner"],
        card_brand=cards["brand"],
        card_last4=cards["last4"],
        card_expires=cards["expires"],
        order_no=order_no,
        order_customer=cust,
        order_card=card,
        amount_cents=amount_cents,
        items=items,
        item_count=item_count,
        channel=[texts.CHANNELS[int(c)] for c in channel_idx],
        shipping_address=shipping,
        billing_address=billing,
        created_s=t,
        notes=notes,
        forwarding=flags["forwarding"],
        resale=flags["resale"],
        urgency=flags["urgency"],
        features=features,
        logit=logit,
        decided=decided,
        reject=reject,
        noise_flipped=flipped,
        reviewer=reviewer,
        decided_s=decided_s,
        pay_order=pays,
        pay_status=status,
        pay_attempted_s=attempted_s[pays],
    )
    company.messages = _messages(company, rm)
    return company


def _messages(co: Company, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Support messages; each customer writes about one of their own orders."""
    n = len(co.order_no)
    as_of_s = int(co.as_of.timestamp())
    intents = list(texts.INTENT_WEIGHTS)
    p = np.asarray([texts.INTENT_WEIGHTS[k] for k in intents])
    m = max(12, n // 4)
    about = rng.integers(0, n, m)
    intent_idx = rng.choice(len(intents), m, p=p / p.sum())
    lang_idx = rng.choice(len(texts.LANGS), m, p=np.asarray(texts.LANG_WEIGHTS))
    sent = np.minimum(co.created_s[about] + rng.integers(60, 3 * _DAY, m), as_of_s - 1)
    out: list[dict[str, Any]] = []
    for k in range(m):
        i = int(about[k])
        intent, lang = intents[intent_idx[k]], texts.LANGS[lang_idx[k]]
        cents = int(co.amount_cents[i])
        no = co.order_no[i]
        template = _pick(rng, texts.MESSAGES[intent][lang])
        text = template.format(
            order_no=no,
            amount=f"{cents // 100}.{cents % 100:02d}",
            email=co.customer_email[co.order_customer[i]],
            task_id=str(int(rng.integers(1, 5000))),
            file_name=_pick(rng, texts.FILE_NAMES).format(order_no=no),
        )
        mentions = "{order_no}" in template or "{file_name}" in template
        out.append(
            {
                "customer": int(co.order_customer[i]),
                "order_no": no if mentions else None,
                "channel": _pick(rng, ("web", "app", "wechat", "email")),
                "lang": lang,
                "intent": intent,
                "text": text,
                "sent_s": int(sent[k]),
            }
        )
    # The product's own examples, written by the customers of the showcase orders.
    showcase = (
        (SHOWCASE_PENDING_CLEAN, "zh", "order_audit", "帮我审核一下订单 66120"),
        (SHOWCASE_PAID, "en", "order_payment", "did the payment for 77410 go through?"),
        (SHOWCASE_PENDING_RISKY, "en", "order_audit", "please audit order 12345"),
    )
    for no, lang, intent, text in showcase:
        i = co.order_no.index(no)
        out.append(
            {
                "customer": int(co.order_customer[i]),
                "order_no": no,
                "channel": "web",
                "lang": lang,
                "intent": intent,
                "text": text,
                "sent_s": as_of_s - 30,
            }
        )
    return out
