"""Learning when to automate: learned gate policies against fixed thresholds on a demo order stream.

    .venv/bin/python bench/rl.py                       # 20,000 orders, every learner, drift scenario
    .venv/bin/python bench/rl.py --orders 5000 --learners q_learning,sarsa --no-sensitivity

What it does:

1. The audit model: the production ``order-audit`` of ``--home`` (default ``bench/out/rl/home``); if
   there is none, a training warehouse (seed 0) is generated and ``configs/order-audit.tiny.toml``
   is trained through the pipeline and promoted (a few minutes on two cores).
2. The stream: a second demo warehouse (seed 1, never seen in training); its first ``--orders``
   decided orders, oldest first, scored once by the audit model. Each order's outcome is the demo's
   delayed fraud truth (the reviewers' hidden decision before label noise); a review settles an
   order correctly.
3. Policies, all under the same cost model and hard rules (the settings' defaults unless
   overridden): always escalate; a single threshold at 0.5; the best pair of fixed thresholds
   chosen in hindsight on the same stream (an oracle); the learners online from the first order
   (every exploratory mistake is paid for; outcomes arrive ``--delay`` orders late for the
   tabular learners and DQN; A2C and PPO are on-policy and learn from each rollout of ``n_steps``
   orders as soon as it is collected).
4. Drift: half-way through, fraud rings start using new accounts for orders under the
   auto-approve limit (a share of them turns fraudulent); the audit model does not know. Fixed
   thresholds tuned before the drift keep their thresholds; the learners see the chargebacks.
5. Writes ``bench/out/rl/report.json`` and ``bench/out/rl/cumulative_cost.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "rl"
TRAIN_OVERRIDES = ["data.limit=8000", "train.max_steps=800", "eval.plots=false", "register.promote=true"]
TRAIN_ORDERS = 12_000
TRAIN_SEED, STREAM_SEED = 0, 1
LEARNERS = ("q_learning", "sarsa", "dqn", "a2c", "ppo")
DRIFT_RATE = 0.25


@dataclass
class Scenario:
    name: str
    stream: Any
    drift_at: int | None = None


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def audit_model(settings: Any, db: Any) -> int:
    """The production audit model's version; trains the tiny one if there is none."""
    from gpt2_agent.demo import generate_warehouse
    from gpt2_agent.registry import NotFound, Registry
    from gpt2_agent.training import train_from_config

    registry = Registry(settings, db)
    with suppress(NotFound):  # none yet: train one below
        return registry.resolve("order-audit").version
    url = settings.warehouse_url
    log(f"no production order-audit in {settings.home}: {TRAIN_ORDERS} orders, training the tiny config")
    generate_warehouse(url, orders=TRAIN_ORDERS, seed=TRAIN_SEED)
    started = time.perf_counter()
    result = train_from_config(
        ROOT / "configs" / "order-audit.tiny.toml", settings, overrides=TRAIN_OVERRIDES, progress=False, db=db
    )
    log(
        f"trained order-audit:{result.registered_version} in {time.perf_counter() - started:.0f}s "
        f"(test ROC-AUC {result.metrics.get('roc_auc', float('nan')):.3f})"
    )
    return registry.resolve("order-audit").version


def build_stream(settings: Any, db: Any, orders: int) -> Any:
    from gpt2_agent.cli.rl import demo_stream
    from gpt2_agent.demo import generate_warehouse

    url = f"sqlite:///{settings.home / 'stream-warehouse.db'}"
    # About 1% of demo orders are still pending; a little extra keeps ``orders`` decided ones.
    generate_warehouse(url, orders=int(orders * 1.03) + 50, seed=STREAM_SEED)
    started = time.perf_counter()
    stream = demo_stream(settings, db, orders=orders, warehouse_url=url, demo_seed=STREAM_SEED)
    log(f"scored {len(stream)} orders in {time.perf_counter() - started:.0f}s: {stream.source}")
    return stream


def drifted(stream: Any, rules: Any) -> Any:
    """From the middle on, a share of new-account orders under the approval limit is fraudulent."""
    from gpt2_agent.rl.features import NEW_ACCOUNT_COLUMN

    affected = (stream.obs[:, NEW_ACCOUNT_COLUMN] > 0.5) & (stream.amount <= float(rules.max_amount))
    return stream.with_drift(len(stream) // 2, affected, DRIFT_RATE)


def run_scenario(
    scenario: Scenario, costs: Any, rules: Any, learners: list[str], delay: int, seed: int
) -> dict[str, Any]:
    from gpt2_agent.rl.online import evaluate, hindsight_thresholds, run_sb3, run_tabular
    from gpt2_agent.rl.policies import FixedPolicy, ThresholdPolicy
    from gpt2_agent.rl.tabular import TabularConfig, TabularLearner

    s = scenario.stream
    runs = []
    runs.append(evaluate(FixedPolicy(), s, costs, rules, name="always escalate"))
    runs.append(evaluate(ThresholdPolicy.single(0.5), s, costs, rules, name="threshold 0.5"))
    best, _ = hindsight_thresholds(s, costs, rules)
    hindsight = evaluate(best, s, costs, rules, name="hindsight-best thresholds")
    hindsight.details = {"approve_min": round(best.approve_min, 4), "reject_max": round(best.reject_max, 4)}
    runs.append(hindsight)
    if scenario.drift_at is not None:
        before, _ = hindsight_thresholds(s.slice(0, scenario.drift_at), costs, rules)
        tuned = evaluate(before, s, costs, rules, name="thresholds tuned before the drift")
        tuned.details = {
            "approve_min": round(before.approve_min, 4),
            "reject_max": round(before.reject_max, 4),
        }
        runs.append(tuned)
        after, _ = hindsight_thresholds(s.slice(scenario.drift_at), costs, rules)
        runs.append(
            evaluate(after, s.slice(scenario.drift_at), costs, rules, name="hindsight thresholds, 2nd half")
        )
    for name in learners:
        started = time.perf_counter()
        if name in ("q_learning", "sarsa"):
            learner = TabularLearner(
                config=TabularConfig(method=name),  # type: ignore[arg-type]
                prior=costs,
            )
            run = run_tabular(learner, s, costs, rules, seed=seed, delay=delay, name=name)
        else:
            run, _ = run_sb3(name, s, costs, rules, seed=seed, delay=delay, name=name)
        log(f"{scenario.name}: {name} online over {len(s)} orders in {time.perf_counter() - started:.0f}s")
        runs.append(run)
    return {"scenario": scenario, "runs": runs, "hindsight": hindsight, "escalate": runs[0]}


def summarise(result: dict[str, Any]) -> list[dict[str, Any]]:
    scenario: Scenario = result["scenario"]
    hs, esc = result["hindsight"].total, result["escalate"].total
    n = len(scenario.stream)
    rows = []
    for run in result["runs"]:
        row = run.summary()
        if len(run.costs) == n:
            row["vs_hindsight"] = round(run.total / hs, 4)
            row["vs_escalate"] = round(run.total / esc, 4)
            row["last_quarter_cost_per_order"] = round(run.window(3 * n // 4)["cost_per_order"], 4)
            if scenario.drift_at is not None:
                row["after_drift_cost_per_order"] = round(run.window(scenario.drift_at)["cost_per_order"], 4)
        elif scenario.drift_at is not None:  # the post-drift oracle, on the second half only
            row["after_drift_cost_per_order"] = round(run.cost_per_order, 4)
            row["last_quarter_cost_per_order"] = round(run.window(n // 4)["cost_per_order"], 4)
        rows.append(row)
    return rows


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 5), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        scenario: Scenario = result["scenario"]
        n = len(scenario.stream)
        for run in result["runs"]:
            if len(run.costs) != n:
                continue
            style = "--" if "threshold" in run.name or "escalate" in run.name else "-"
            ax.plot(np.arange(1, n + 1), run.cumulative() / 1000.0, style, label=run.name, linewidth=1.3)
        if scenario.drift_at is not None:
            ax.axvline(scenario.drift_at, color="grey", linestyle=":", label="drift starts")
        ax.set_title(f"{scenario.name}: cumulative cost")
        ax.set_xlabel("orders")
        ax.set_ylabel("cumulative cost (thousands)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sensitivity(stream: Any, delay: int, seed: int) -> list[dict[str, Any]]:
    """How the targets depend on the business's numbers (tabular Q-learning only)."""
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.online import evaluate, hindsight_thresholds, run_tabular
    from gpt2_agent.rl.policies import FixedPolicy
    from gpt2_agent.rl.safety import HardRules
    from gpt2_agent.rl.tabular import TabularLearner

    out = []
    for review in (8.0, 20.0):
        for limit in ("500.00", "2000.00"):
            costs, rules = CostModel(review_cost=review), HardRules(Decimal(limit))
            esc = evaluate(FixedPolicy(), stream, costs, rules).total
            _, hs = hindsight_thresholds(stream, costs, rules)
            run = run_tabular(TabularLearner(prior=costs), stream, costs, rules, seed=seed, delay=delay)
            out.append(
                {
                    "review_cost": review,
                    "max_amount": limit,
                    "hindsight_vs_escalate": round(hs / esc, 4),
                    "q_learning_vs_escalate": round(run.total / esc, 4),
                    "q_learning_vs_hindsight": round(run.total / hs, 4),
                    "q_learning_automation": round(run.automation_rate, 4),
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--home", type=Path, default=OUT / "home")
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument(
        "--drift-learners", default=",".join(LEARNERS), help="learners run in the drift scenario"
    )
    parser.add_argument("--delay", type=int, default=200, help="orders before an outcome is known")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sensitivity", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)  # tiny networks; the serving runtime sets its own threads for scoring

    from gpt2_agent.config import load_settings
    from gpt2_agent.rl.costs import CostModel
    from gpt2_agent.rl.safety import HardRules
    from gpt2_agent.store import open_database

    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    args.home.mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        home=args.home,
        database_url=f"sqlite:///{args.home / 'app.db'}",
        warehouse_url=f"sqlite:///{args.home / 'train-warehouse.db'}",
    )
    db = open_database(settings)
    version = audit_model(settings, db)
    stream = build_stream(settings, db, args.orders)
    torch.set_num_threads(1)
    costs, rules = CostModel.from_settings(settings), HardRules.from_settings(settings)
    learners = [x for x in args.learners.split(",") if x]
    drift_learners = [x for x in args.drift_learners.split(",") if x]
    scenarios = [
        (Scenario("stationary", stream), learners),
        (Scenario("drift", drifted(stream, rules), len(stream) // 2), drift_learners),
    ]
    results = [run_scenario(sc, costs, rules, ls, args.delay, args.seed) for sc, ls in scenarios]
    report: dict[str, Any] = {
        "orders": len(stream),
        "audit_model": f"order-audit:{version}",
        "stream": stream.source,
        "bad_rate": round(float(stream.bad.mean()), 4),
        "cost_model": costs.as_dict(),
        "hard_rules": rules.as_dict(),
        "delay": args.delay,
        "scenarios": {r["scenario"].name: summarise(r) for r in results},
    }
    if args.sensitivity:
        report["sensitivity"] = sensitivity(stream, args.delay, args.seed)
    plot(results, OUT / "cumulative_cost.png")
    report["seconds"] = round(time.perf_counter() - started, 1)
    (OUT / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print_report(report)
    db.dispose()
    return 0


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\n{report['orders']} orders scored by {report['audit_model']}; fraud rate {report['bad_rate']:.1%}"
    )
    print(
        f"costs {report['cost_model']}; rules {report['hard_rules']}; outcomes {report['delay']} orders late"
    )
    for name, rows in report["scenarios"].items():
        print(f"\n== {name} ==")
        header = f"{'policy':<38}{'cost/order':>11}{'automated':>10}{'vs hindsight':>13}{'vs escalate':>12}"
        header += f"{'last 1/4':>10}"
        if name == "drift":
            header += f"{'after drift':>12}"
        print(header)
        for row in rows:
            line = (
                f"{row['name']:<38}{row['cost_per_order']:>11.3f}{row['automation_rate']:>10.1%}"
                f"{row.get('vs_hindsight', float('nan')):>13.3f}{row.get('vs_escalate', float('nan')):>12.3f}"
                f"{row.get('last_quarter_cost_per_order', float('nan')):>10.3f}"
            )
            if name == "drift":
                line += f"{row.get('after_drift_cost_per_order', float('nan')):>12.3f}"
            print(line)
    if "sensitivity" in report:
        print("\n== sensitivity (q_learning, stationary) ==")
        for row in report["sensitivity"]:
            print(row)
    print(f"\nwrote {OUT / 'report.json'} and {OUT / 'cumulative_cost.png'} in {report['seconds']}s")


if __name__ == "__main__":
    sys.exit(main())
