"""The model store shared by nodes: two serving runtimes with their own database connections
(as on two machines) over one PostgreSQL and one models folder (the shared mount). A version
promoted by a third party (the training node) is served by both within the polling bound."""

from __future__ import annotations

import time
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from gpt2_agent.config import load_settings
from gpt2_agent.registry import Registry
from gpt2_agent.serving import ServingRuntime
from gpt2_agent.store import create_database, upgrade
from tests.serving.conftest import MODEL, order_texts, publish_model, tiny_classifier
from tests.serving.conftest import tokenizer as tokenizer  # the session fixture, re-exported

POLL = 0.2


def test_every_node_serves_a_promoted_version_within_the_poll_bound(
    tmp_path: Path,
    pg_url: str,
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    shared = tmp_path / "shared-models"
    settings = load_settings(home=tmp_path / "home", database_url=pg_url, models_dir=shared)
    dbs = [create_database(pg_url) for _ in range(3)]  # trainer, node 1, node 2: separate pools
    upgrade(dbs[0])
    trainer = Registry(settings, dbs[0])
    nodes = [
        ServingRuntime(settings, Registry(settings, db), dtype="fp32", reload_interval_s=POLL, threads=1)
        for db in dbs[1:]
    ]
    text = order_texts(1, seed=3)[0]
    try:
        publish_model(trainer, tmp_path / "v1", tiny_classifier(tokenizer, seed=1), tokenizer)
        assert [node.predict_one(MODEL, text).version for node in nodes] == [1, 1]

        publish_model(trainer, tmp_path / "v2", tiny_classifier(tokenizer, seed=2), tokenizer)
        promoted = time.monotonic()
        seen: dict[int, float] = {}
        while len(seen) < len(nodes) and time.monotonic() - promoted < 30:
            for i, node in enumerate(nodes):
                if i not in seen and node.loaded_version(MODEL) == 2:
                    seen[i] = time.monotonic() - promoted
            time.sleep(0.02)
        assert sorted(seen) == [0, 1], f"nodes serving v2: {seen}"
        assert [node.predict_one(MODEL, text).version for node in nodes] == [2, 2]
        # Bounded by the poll interval plus loading and warming the version (seconds on a busy CI box).
        assert max(seen.values()) < POLL + 15
        print(f"alias move seen by the nodes after {', '.join(f'{s:.2f}s' for s in seen.values())}")
    finally:
        for node in nodes:
            node.close()
        for db in dbs:
            db.dispose()
