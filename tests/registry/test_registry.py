"""Registry behaviour on SQLite and PostgreSQL: numbering, aliases, the promotion gate, history, integrity."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import gpt2_agent
from gpt2_agent.registry import (
    ChecksumMismatch,
    InvalidArtifact,
    InvalidName,
    NotFound,
    PromotionRefused,
    Registry,
)
from gpt2_agent.store import Database, utcnow

MakeOutput = Callable[..., Path]


def register(registry: Registry, make_output: MakeOutput, auc: float, *, eval_set: str = "eval-a") -> int:
    v = registry.register(
        make_output(), "audit", metrics={"roc_auc": auc}, eval_set_hash=eval_set, created_by="t"
    )
    return v.version


def test_register_numbers_versions_and_writes_the_artifact(
    registry: Registry, make_output: MakeOutput
) -> None:
    source = make_output()
    v1 = registry.register(
        source,
        "audit",
        metrics={"roc_auc": 0.9},
        lineage={"dataset_hash": "d" * 64, "config": {"lr": 1e-3}},
        eval_set_hash="eval-a",
        created_by="alice",
    )
    v2 = registry.register(make_output(), "audit", created_by="bob")
    assert (v1.version, v2.version) == (1, 2)
    assert source.is_dir(), "registering copies; the training output stays"
    assert v1.path == registry.root / "audit" / "1"
    names = {p.name for p in v1.path.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "labels.json",
        "metrics.json",
        "lineage.json",
    } <= names
    assert set(v1.files) == names
    lineage = json.loads((v1.path / "lineage.json").read_text())
    assert lineage["dataset_hash"] == "d" * 64
    assert lineage["config"] == {"lr": 1e-3}
    assert lineage["eval_set_hash"] == "eval-a"
    assert lineage["code_version"]["package"] == gpt2_agent.__version__
    assert json.loads((v1.path / "metrics.json").read_text()) == {"roc_auc": 0.9}
    assert json.loads((v1.path / "labels.json").read_text()) == ["approve", "reject"]
    assert v1.created_by == "alice" and v1.eval_set_hash == "eval-a" and v1.status == "ready"
    assert not list((registry.root / "audit").glob(".staging-*"))

    [model] = registry.list_models()
    assert (model.name, model.task, model.metric, model.latest_version, model.version_count) == (
        "audit",
        "classify",
        "roc_auc",
        2,
        2,
    )
    assert [v.version for v in registry.list_versions("audit")] == [1, 2]
    registry.verify("audit", 1)


def test_register_reads_metrics_and_eval_hash_from_the_folder(
    registry: Registry, make_output: MakeOutput
) -> None:
    source = make_output()
    (source / "metrics.json").write_text(json.dumps({"roc_auc": 0.7, "eval_set_hash": "from-file"}))
    v = registry.register(source, "audit", metrics={"f1": 0.5})
    assert v.metrics == {"roc_auc": 0.7, "eval_set_hash": "from-file", "f1": 0.5}
    assert v.eval_set_hash == "from-file"


def test_register_move_takes_the_folder(registry: Registry, make_output: MakeOutput) -> None:
    source = make_output()
    v = registry.register(source, "audit", move=True)
    assert not source.exists()
    assert (v.path / "model.safetensors").is_file()


def test_concurrent_registrations_get_distinct_numbers(registry: Registry, make_output: MakeOutput) -> None:
    sources = [make_output() for _ in range(6)]
    barrier = threading.Barrier(len(sources))
    results: list[int] = []
    errors: list[BaseException] = []

    def work(src: Path) -> None:
        try:
            barrier.wait()
            results.append(registry.register(src, "audit", created_by="thread").version)
        except BaseException as exc:  # surfaced below; a thread must not swallow it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (registry.root / "audit").iterdir()) == ["1", "2", "3", "4", "5", "6"]
    for version in results:
        registry.verify("audit", version)


def test_invalid_artifact_writes_nothing(registry: Registry, make_output: MakeOutput) -> None:
    source = make_output()
    (source / "training_args.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(InvalidArtifact, match=r"training_args.bin"):
        registry.register(source, "audit")
    assert registry.list_models() == []
    assert not (registry.root / "audit").exists()


def test_names_are_checked(registry: Registry, make_output: MakeOutput) -> None:
    for bad in ("Audit", "../x", "a/b", "a:b", "", ".hidden"):
        with pytest.raises(InvalidName):
            registry.register(make_output(), bad)
    registry.register(make_output(), "audit")
    for bad_alias in ("Prod", "1", "latest", "a b"):
        with pytest.raises(InvalidName):
            registry.set_alias("audit", bad_alias, 1, by="t")


def test_resolve(registry: Registry, make_output: MakeOutput) -> None:
    register(registry, make_output, 0.8)
    register(registry, make_output, 0.9)
    assert registry.resolve("audit:1").version == 1
    assert registry.resolve("audit", "2").version == 2
    assert registry.resolve("audit:latest").version == 2
    with pytest.raises(NotFound, match=r"no alias 'production'"):
        registry.resolve("audit")
    registry.set_alias("audit", "candidate", 2, by="t")
    assert registry.resolve("audit:candidate").version == 2
    assert registry.resolve("audit", "candidate").aliases == ["candidate"]
    registry.promote("audit", 1, by="t")
    assert registry.resolve("audit").version == 1
    with pytest.raises(NotFound, match=r"no version 7"):
        registry.resolve("audit:7")
    with pytest.raises(NotFound, match=r"'nope' not found"):
        registry.resolve("nope:1")


def test_promotion_gate(registry: Registry, make_output: MakeOutput) -> None:
    v1 = register(registry, make_output, 0.80)
    worse = register(registry, make_output, 0.75)
    better = register(registry, make_output, 0.85)
    tie = register(registry, make_output, 0.85)

    first = registry.promote("audit", v1, by="alice")
    assert first.changed and first.previous_version is None

    with pytest.raises(PromotionRefused) as refused:
        registry.promote("audit", worse, by="alice")
    message = str(refused.value)
    assert "roc_auc=0.75" in message and "roc_auc=0.8" in message and "higher is better" in message
    assert registry.alias_version("audit", "production") == v1

    result = registry.promote("audit", better, by="alice")
    assert (result.previous_version, result.value, result.previous_value, result.forced) == (
        v1,
        0.85,
        0.8,
        False,
    )
    assert registry.alias_version("audit", "production") == better

    with pytest.raises(PromotionRefused, match=r"does not beat"):
        registry.promote("audit", tie, by="alice")

    forced = registry.promote("audit", worse, by="bob", force=True, reason="rollback drill")
    assert forced.forced and forced.changed
    assert registry.alias_version("audit", "production") == worse
    last = registry.alias_history("audit", "production")[-1]
    assert last.who == "bob" and "rollback drill" in last.reason and "forced" in last.reason

    again = registry.promote("audit", worse, by="bob")
    assert not again.changed


def test_promotion_refuses_different_eval_sets(registry: Registry, make_output: MakeOutput) -> None:
    v1 = register(registry, make_output, 0.80, eval_set="eval-a")
    v2 = register(registry, make_output, 0.99, eval_set="eval-b")
    registry.promote("audit", v1, by="t")
    with pytest.raises(PromotionRefused, match=r"eval set eval-b.*eval-a.*not comparable"):
        registry.promote("audit", v2, by="t")
    assert registry.promote("audit", v2, by="t", force=True).forced


def test_lower_is_better_metric(registry: Registry, make_output: MakeOutput) -> None:
    registry.register(make_output(), "lm", metrics={"loss": 2.0, "roc_auc": 0.5}, eval_set_hash="e")
    registry.register(make_output(), "lm", metrics={"loss": 2.5, "roc_auc": 0.9}, eval_set_hash="e")
    registry.register(make_output(), "lm", metrics={"loss": 1.5, "roc_auc": 0.1}, eval_set_hash="e")
    registry.configure_model("lm", metric="loss")
    assert registry.get_model("lm").metric == "loss"
    registry.promote("lm", 1, by="t")
    with pytest.raises(
        PromotionRefused, match=r"loss=2.5 does not beat production v1 loss=2 \(lower is better\)"
    ):
        registry.promote("lm", 2, by="t")
    registry.promote("lm", 3, by="t")
    # An explicit metric overrides the model's; the candidate alias is gated like any other.
    registry.promote("lm", 1, "candidate", by="t")
    registry.promote("lm", 2, "candidate", by="t", metric="max:roc_auc")
    assert registry.alias_version("lm", "candidate") == 2


def test_alias_history_and_alias_at(registry: Registry, make_output: MakeOutput) -> None:
    v1 = register(registry, make_output, 0.8)
    v2 = register(registry, make_output, 0.9)
    before = utcnow()
    registry.promote("audit", v1, by="alice")
    after_first = utcnow()
    registry.promote("audit", v2, by="bob")
    after_second = utcnow()
    registry.set_alias("audit", "candidate", v1, by="carol")
    registry.delete_alias("audit", "candidate", by="carol", reason="done")

    assert registry.alias_at("audit", "production", before) is None
    assert registry.alias_at("audit", "production", after_first) == v1
    assert registry.alias_at("audit", "production", after_second) == v2
    assert registry.alias_at("audit", "production", after_second.replace(tzinfo=None)) == v2
    assert registry.alias_at("audit", "candidate", utcnow()) is None

    history = registry.alias_history("audit", "production")
    assert [(e.from_version, e.to_version, e.who) for e in history] == [(None, v1, "alice"), (v1, v2, "bob")]
    everything = registry.alias_history("audit")
    assert [(e.alias, e.to_version) for e in everything][-2:] == [("candidate", v1), ("candidate", None)]
    assert registry.get_model("audit").aliases == {"production": v2}


def test_generation_grows_on_every_change(registry: Registry, make_output: MakeOutput) -> None:
    assert registry.generation("audit") == 0
    register(registry, make_output, 0.8)
    g1 = registry.generation("audit")
    register(registry, make_output, 0.9)
    g2 = registry.generation("audit")
    registry.promote("audit", 2, by="t")
    g3 = registry.generation("audit")
    assert 0 < g1 < g2 < g3
    assert registry.alias_version("audit", "production") == 2
    assert registry.alias_version("audit", "candidate") is None


def test_archive(registry: Registry, make_output: MakeOutput) -> None:
    for auc in (0.8, 0.9, 0.7):
        register(registry, make_output, auc)
    registry.promote("audit", 2, by="t")
    with pytest.raises(PromotionRefused, match=r"still production"):
        registry.archive("audit", 2, by="t")
    assert registry.archive("audit", 3, by="t").status == "archived"
    with pytest.raises(PromotionRefused, match=r"archived"):
        registry.set_alias("audit", "candidate", 3, by="t")
    assert registry.resolve("audit:latest").version == 2, "latest skips archived versions"
    assert registry.resolve("audit:3").status == "archived", "archived versions stay readable"


def test_verify_catches_tampering(registry: Registry, make_output: MakeOutput) -> None:
    v = registry.register(make_output(), "audit")
    weights = v.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch) as exc:
        registry.verify("audit", 1)
    assert exc.value.problems == {"model.safetensors": "modified"}
    with pytest.raises(ChecksumMismatch):
        registry.bundle("audit", 1)

    v2 = registry.register(make_output(), "audit")
    (v2.path / "extra.txt").write_text("x")
    (v2.path / "labels.json").unlink()
    with pytest.raises(ChecksumMismatch) as exc:
        registry.verify("audit", 2)
    assert exc.value.problems == {"labels.json": "missing", "extra.txt": "unexpected"}


def test_exported_members_are_sorted_and_complete() -> None:
    import gpt2_agent.registry as registry_package

    assert registry_package.__all__ == sorted(registry_package.__all__, key=lambda n: (not n.isupper(), n))
    assert all(hasattr(registry_package, name) for name in registry_package.__all__)


def test_migration_matches_the_tables(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gpt2_agent.store import Base, tables  # noqa: F401  (registers every table)

    mine = {"models", "model_versions", "model_aliases", "alias_events"}
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    # Entries are tuples (or lists of tuples) naming the table; the registry's must not appear.
    assert [d for d in diff if any(f"'{t}'" in repr(d) for t in mine)] == []


def test_leftovers_of_a_crash_are_cleaned_up(registry: Registry, make_output: MakeOutput) -> None:
    model_dir = registry.root / "audit"
    stale = model_dir / ".staging-dead"
    stale.mkdir(parents=True)
    os.utime(stale, (0, 0))
    orphan = model_dir / "1"  # renamed into place, then the process died before COMMIT
    orphan.mkdir()
    (orphan / "config.json").write_text("{}")
    v = registry.register(make_output(), "audit")
    assert v.version == 1
    registry.verify("audit", 1)
    assert not stale.exists()
    assert len(list(model_dir.glob(".orphan-1-*"))) == 1
