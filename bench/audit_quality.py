"""Order-audit quality: the GPT-2 audit model against two baselines, same data, same split.

    .venv/bin/python bench/audit_quality.py                       # 20k orders, default config
    .venv/bin/python bench/audit_quality.py --orders 5000 --skip-gpt2

Rows (all scored on the same held-out test split, keyed by the hash of the order number):

- ``gbt-tabular``: scikit-learn ``HistGradientBoostingClassifier`` on the tabular feature vector
  (``FEATURE_NAMES``: amounts, history, account age, addresses, velocity, items, channel; nothing
  from the notes).
- ``tfidf-logreg``: TF-IDF + logistic regression on the serialized order text (the same text the
  GPT-2 model reads). Word and character n-gram variants and the regularisation strength are
  chosen on the validation split, so this is the strongest of a small family, not a straw man.
- ``gpt2``: the GPT-2 audit model trained by the project's training pipeline
  (``configs/order-audit.toml``) on the train split, early-stopped on validation.
- ``policy (reference)``: the warehouse's own hidden reject probability; not a model, it shows
  the ceiling that label noise leaves.

Metrics treat "reject" as the positive class: ROC-AUC of P(reject), F1 of reject at P >= 0.5,
and expected calibration error (15 equal-width bins of P(reject)). Writes a JSON report to
``bench/out/audit_quality.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from gpt2_agent.config import Settings, load_settings
from gpt2_agent.demo import generate_warehouse
from gpt2_agent.demo.company import build_company
from gpt2_agent.training.data import (
    REJECT,
    AuditRecord,
    dataset_fingerprint,
    feature_matrix,
    load_audit_dataset,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


@dataclass
class Row:
    name: str
    auc: float
    f1: float
    ece: float
    seconds: float
    note: str = ""


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Binary ECE: |mean(p) - mean(y)| per equal-width bin of p, weighted by the bin's share."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def score(name: str, y: np.ndarray, p: np.ndarray, seconds: float, note: str = "") -> Row:
    return Row(
        name=name,
        auc=float(roc_auc_score(y, p)),
        f1=float(f1_score(y, p >= 0.5)),
        ece=expected_calibration_error(y, p),
        seconds=seconds,
        note=note,
    )


def auc_difference(
    y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, *, rounds: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """ROC-AUC of ``p_a`` minus that of ``p_b`` on the same orders, with a paired bootstrap 95% CI."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        diffs.append(roc_auc_score(y[idx], p_a[idx]) - roc_auc_score(y[idx], p_b[idx]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(roc_auc_score(y, p_a) - roc_auc_score(y, p_b)), float(lo), float(hi)


def reject_target(records: Sequence[AuditRecord]) -> np.ndarray:
    """1 where the reviewers rejected (the dataset's label is 1 = approve)."""
    return np.array([r.label == REJECT for r in records], dtype=np.int64)


# --- baselines ----------------------------------------------------------------------------------


def gbt_tabular(
    train: Sequence[AuditRecord], val: Sequence[AuditRecord], test: Sequence[AuditRecord]
) -> np.ndarray:
    x_train = np.vstack([feature_matrix(train), feature_matrix(val)])
    y_train = np.concatenate([reject_target(train), reject_target(val)])
    # Early stopping on an internal 10% holdout; the validation split joins the training data.
    model = HistGradientBoostingClassifier(
        max_iter=500, learning_rate=0.05, early_stopping=True, validation_fraction=0.1, random_state=0
    )
    model.fit(x_train, y_train)
    return np.asarray(model.predict_proba(feature_matrix(test))[:, 1])


TFIDF_VARIANTS: dict[str, dict[str, object]] = {
    # Keeps one-character tokens: single Chinese characters and digits carry meaning here.
    "word 1-2": {"ngram_range": (1, 2), "token_pattern": r"(?u)\b\w+\b", "min_df": 2, "sublinear_tf": True},
    "char 1-4": {"analyzer": "char_wb", "ngram_range": (1, 4), "min_df": 3, "sublinear_tf": True},
}


def tfidf_logreg(
    train: Sequence[AuditRecord], val: Sequence[AuditRecord], test: Sequence[AuditRecord]
) -> tuple[np.ndarray, str]:
    y_train, y_val = reject_target(train), reject_target(val)
    best: tuple[float, str, float] | None = None
    for variant, params in TFIDF_VARIANTS.items():
        vectorizer = TfidfVectorizer(**params)
        x_train = vectorizer.fit_transform([r.text for r in train])
        x_val = vectorizer.transform([r.text for r in val])
        for c in (1.0, 4.0, 16.0):
            model = LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
            auc = float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1]))
            if best is None or auc > best[0]:
                best = (auc, variant, c)
    assert best is not None
    _, variant, c = best
    vectorizer = TfidfVectorizer(**TFIDF_VARIANTS[variant])
    x_train = vectorizer.fit_transform([r.text for r in [*train, *val]])
    model = LogisticRegression(C=c, max_iter=3000).fit(x_train, np.concatenate([y_train, y_val]))
    p = model.predict_proba(vectorizer.transform([r.text for r in test]))[:, 1]
    return np.asarray(p), f"{variant}, C={c:g} (chosen on validation)"


# --- GPT-2 --------------------------------------------------------------------------------------


def gpt2_audit_model(
    config: Path, settings: Settings, work: Path, overrides: Sequence[str], *, resume: bool = False
) -> tuple[dict[str, float], str]:
    """Train the GPT-2 audit model with the project's pipeline; P(reject) per test order number.

    The only place the bench touches the training pipeline: ``train_from_config`` trains on the
    train split (early stopping on validation), then the saved artifact scores the test split.
    """
    from gpt2_agent.modeling import load_model
    from gpt2_agent.training import load_tokenizer, train_from_config
    from gpt2_agent.training.batches import TensorBatches
    from gpt2_agent.training.encoding import classification_features
    from gpt2_agent.training.evaluate import classifier_probabilities

    run_dir = work / "gpt2-run"
    every = [f'output_dir="{run_dir}"', "register.enabled=false", "eval.plots=false", *overrides]
    result = train_from_config(config, settings, overrides=every, progress=False, resume=resume)
    model = load_model(result.model_dir)
    tokenizer = load_tokenizer(result.model_dir)
    id2label = {int(k): str(v) for k, v in (model.config.id2label or {}).items()}
    labels = [id2label[i] for i in range(len(id2label))]
    test = _pipeline_splits(config, settings, overrides)["test"]
    features = classification_features(tokenizer, test, labels, model.config.n_positions)
    batches = TensorBatches(features, batch_size=128, pad_token_id=tokenizer.pad_token_id, shuffle=False)
    probs, _ = classifier_probabilities(model, batches)
    p_reject = probs[:, labels.index("reject")]
    shape = model.config
    fit = result.fit
    note = (
        f"{shape.n_layer}L/{shape.n_embd}d, {fit.steps} steps, {fit.tokens_per_s:.0f} tok/s"
        + (f", best at step {fit.best_step}" if fit.best_step else "")
        + (f"; {' '.join(overrides)}" if overrides else "")
    )
    return {ex.key: float(p) for ex, p in zip(test, p_reject, strict=True)}, note


def _pipeline_splits(config: Path, settings: Settings, overrides: Sequence[str]) -> dict[str, list[Any]]:
    """The train/validation/test examples exactly as the training pipeline splits them."""
    from gpt2_agent.training import load_config
    from gpt2_agent.training.datasets import load_examples

    cfg = load_config(config, overrides)
    splits = load_examples(cfg.data, cfg.model.task, settings)
    return {"train": splits.train, "validation": splits.validation, "test": splits.test}


# --- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-noise", type=float, default=0.05)
    parser.add_argument("--work", type=Path, default=OUT / "audit_quality")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "order-audit.toml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="config override, e.g. train.epochs=2"
    )
    parser.add_argument("--skip-gpt2", action="store_true")
    parser.add_argument(
        "--resume", action="store_true", help="continue GPT-2 training from the run folder's last checkpoint"
    )
    args = parser.parse_args(argv)

    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'warehouse.db'}"
    settings = load_settings(
        home=work / "home", warehouse_url=url, database_url=f"sqlite:///{work / 'app.db'}"
    )
    t0 = time.perf_counter()
    summary = generate_warehouse(url, orders=args.orders, seed=args.seed, label_noise=args.label_noise)
    # Same split as the pipeline (its config's fractions and salt), same text (its template).
    splits = _pipeline_splits(args.config, settings, args.overrides)
    from gpt2_agent.training import load_config

    cfg = load_config(args.config, args.overrides)
    by_key = {r.key: r for r in load_audit_dataset(url, template=cfg.data.template, limit=cfg.data.limit)}
    train, val, test = (
        [by_key[str(ex.key)] for ex in splits[name]] for name in ("train", "validation", "test")
    )
    records = [*train, *val, *test]
    y = reject_target(test)
    print(
        f"warehouse: {summary.orders} orders (seed {args.seed}, label noise {args.label_noise:.0%}) in "
        f"{time.perf_counter() - t0:.1f}s; decided {len(records)}: train {len(train)}, "
        f"validation {len(val)}, test {len(test)}; reject rate {reject_target(records).mean():.1%}",
        flush=True,
    )

    rows: list[Row] = []
    predictions: dict[str, np.ndarray] = {}
    t = time.perf_counter()
    predictions["gbt-tabular"] = gbt_tabular(train, val, test)
    rows.append(
        score("gbt-tabular", y, predictions["gbt-tabular"], time.perf_counter() - t, "tabular features")
    )
    print(f"gbt-tabular done in {rows[-1].seconds:.0f}s", flush=True)
    t = time.perf_counter()
    predictions["tfidf-logreg"], note = tfidf_logreg(train, val, test)
    rows.append(score("tfidf-logreg", y, predictions["tfidf-logreg"], time.perf_counter() - t, note))
    print(f"tfidf-logreg done in {rows[-1].seconds:.0f}s", flush=True)
    if not args.skip_gpt2:
        t = time.perf_counter()
        scores, note = gpt2_audit_model(args.config, settings, work, args.overrides, resume=args.resume)
        predictions["gpt2"] = np.array([scores[r.key] for r in test])
        rows.append(score("gpt2", y, predictions["gpt2"], time.perf_counter() - t, note))

    # The warehouse's hidden policy, before label noise: the best any model could hope for.
    company = build_company(args.orders, seed=args.seed, label_noise=args.label_noise)
    index = {no: i for i, no in enumerate(company.order_no)}
    logit = np.array([company.logit[index[r.key]] for r in test])
    rows.append(score("policy (reference)", y, 1.0 / (1.0 + np.exp(-logit)), 0.0, "true reject probability"))

    print()
    print(f"{'model':<20} {'ROC-AUC':>8} {'F1':>7} {'ECE':>7} {'seconds':>8}  note")
    for r in rows:
        print(f"{r.name:<20} {r.auc:>8.4f} {r.f1:>7.4f} {r.ece:>7.4f} {r.seconds:>8.1f}  {r.note}")
    comparisons: dict[str, dict[str, Any]] = {}
    if "gpt2" in predictions:
        print()
        for baseline in ("gbt-tabular", "tfidf-logreg"):
            diff, lo, hi = auc_difference(y, predictions["gpt2"], predictions[baseline])
            comparisons[baseline] = {"auc_difference": diff, "ci95": [lo, hi]}
            print(f"gpt2 - {baseline}: ROC-AUC {diff:+.4f} (paired bootstrap 95% CI {lo:+.4f} .. {hi:+.4f})")
    report = {
        "orders": args.orders,
        "seed": args.seed,
        "label_noise": args.label_noise,
        "config": str(args.config),
        "overrides": args.overrides,
        "dataset": dataset_fingerprint(records),
        "split_sizes": {"train": len(train), "validation": len(val), "test": len(test)},
        "rows": [r.__dict__ for r in rows],
        "gpt2_vs": comparisons,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "audit_quality.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
