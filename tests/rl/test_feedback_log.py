"""The feedback log: outcomes joined to gate decisions, costs, refusals; stats; the migration."""

from __future__ import annotations

import numpy as np
import pytest

from gpt2_agent.rl.costs import CostModel
from gpt2_agent.rl.feedback_log import FeedbackLog, OutcomeError, UnknownDecision
from gpt2_agent.rl.stats import gate_stats
from gpt2_agent.store import Database
from tests.rl.conftest import LogRows


def test_outcomes_join_their_decisions_and_cost_them(database: Database, log_rows: LogRows) -> None:
    costs = CostModel()
    log = FeedbackLog(database, costs)
    # An escalated order a person rejected; one they approved and that was paid, then charged back.
    r1, r2, r3 = log_rows.run(), log_rows.run(), log_rows.run()
    d1 = log_rows.decision(probability=0.3, amount="200.00", action="escalate", run_id=r1)
    d2 = log_rows.decision(probability=0.8, amount="100.00", action="escalate", run_id=r2)
    d3 = log_rows.decision(probability=0.99, amount="50.00", action="auto_approve", run_id=r3, propensity=0.9)
    d4 = log_rows.decision(probability=0.01, amount="80.00", action="auto_reject", propensity=0.95)
    log_rows.review(r1, "reject")
    log_rows.review(r2, "approve")
    log_rows.payment(r2, "paid")
    log_rows.payment(r3, "insufficient_balance")
    result = log.ingest()
    assert (result.reviewer, result.payment, result.rejected) == (2, 2, 0)
    assert log.ingest().reviewer == 0  # each source row once

    rows = {d.id: d for d in log.joined()}
    assert rows[d1].reviewer == "reject" and rows[d1].cost == 8.0  # the review; the rejection was right
    assert rows[d2].cost is None  # approved and paid: the chargeback may still come
    assert rows[d3].payment == "insufficient_balance" and rows[d3].cost == 0.0  # nothing shipped
    assert rows[d4].cost is None  # nobody knows yet whether the rejected order was good
    log.record_outcome("chargeback", "chargeback", decision_id=d2)
    log.record_outcome("chargeback", "clear", decision_id=d4)
    rows = {d.id: d for d in log.joined()}
    assert rows[d2].cost == pytest.approx(8.0 + 115.0)  # the reviewer approved a fraud
    assert rows[d4].cost == pytest.approx(5.0 + 0.2 * 80.0)  # a good order was rejected
    np.testing.assert_allclose(rows[d2].revealed, [115.0, 0.0, 123.0])
    data = log.logged_data()
    assert len(data) == 4 and sorted(data.propensity.tolist()) == [0.9, 0.95, 1.0, 1.0]

    stats = gate_stats(database, costs)
    assert stats["decisions"] == 4 and stats["automation_rate"] == 0.5
    assert stats["by_action"] == {"auto_approve": 1, "auto_reject": 1, "escalate": 2}
    assert stats["policy"] == "thresholds-x" and stats["known_outcomes"] == 4
    assert stats["cost_per_order"] == pytest.approx((8.0 + 123.0 + 0.0 + 21.0) / 4)


def test_feedback_for_unknown_decisions_is_refused_and_counted(database: Database, log_rows: LogRows) -> None:
    log = FeedbackLog(database)
    with pytest.raises(UnknownDecision, match="not joined"):
        log.record_outcome("chargeback", "chargeback", decision_id=999)
    with pytest.raises(UnknownDecision):
        log.record_outcome("chargeback", "clear", idempotency_key="nope")
    orphan = log_rows.run()  # a run whose order never went through the gate
    log_rows.review(orphan, "approve")
    log_rows.payment(orphan, "paid")
    assert log.ingest().rejected == 2
    assert log.ingest().rejected == 0  # counted once
    assert log.rejected_count() == 4
    assert log.joined() == [] and gate_stats(database)["rejected_feedback"] == 4
    with pytest.raises(OutcomeError, match="chargeback"):
        log.record_outcome("chargeback", "maybe", decision_id=1)
    with pytest.raises(OutcomeError, match="unknown outcome kind"):
        log.record_outcome("weather", "rain", decision_id=1)


def test_recording_twice_keeps_the_first(database: Database, log_rows: LogRows) -> None:
    log = FeedbackLog(database)
    d = log_rows.decision(probability=0.99, amount="50.00", action="auto_approve")
    first = log.record_outcome("chargeback", "clear", decision_id=d)
    assert log.record_outcome("chargeback", "chargeback", decision_id=d) == first
    assert log.joined()[0].chargeback is False


def test_reviewer_decisions_become_labelled_texts(database: Database, log_rows: LogRows) -> None:
    run = log_rows.run()
    log_rows.review(run, "reject", text="300.00 CNY | web | URGENT")
    assert FeedbackLog(database).reviewer_examples() == [
        {"text": "300.00 CNY | web | URGENT", "label": "reject", "key": "10001"}
    ]


def test_stats_of_an_empty_log(database: Database) -> None:
    stats = gate_stats(database)
    assert stats["decisions"] == 0 and stats["automation_rate"] is None and stats["cost_per_order"] is None


def test_migration_matches_the_tables(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gpt2_agent.store import Base, tables  # noqa: F401  (registers every table)

    mine = {"gate_outcomes", "gate_outcome_rejects"}
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(f"'{t}'" in repr(d) for t in mine)] == []
