"""Fixtures for the registry tests: SQLite and PostgreSQL databases and tiny GPT-2 training outputs."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import create_engine, text
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2ForSequenceClassification, PreTrainedTokenizerFast

from gpt2_agent.config import Settings
from gpt2_agent.registry import Registry
from gpt2_agent.store import Database, create_database, upgrade

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REGISTRY_TABLES = ("alias_events", "model_aliases", "model_versions", "models")  # children first


def tiny_model(seed: int = 0) -> GPT2ForSequenceClassification:
    """A 2-layer GPT-2 classifier small enough to build and save in milliseconds."""
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        vocab_size=100,
        n_positions=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        id2label={0: "approve", 1: "reject"},
    )
    return GPT2ForSequenceClassification(config).eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a handful of words (the registry only needs its files)."""
    words = ["<pad>", "<s>", "</s>", "<unk>", "order", "approve", "reject", "amount", "card"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture(scope="session")
def template_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One saved training output (weights + tokenizer), copied by :func:`make_output`."""
    folder = tmp_path_factory.mktemp("template") / "model"
    tiny_model(0).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture
def reference_model() -> GPT2ForSequenceClassification:
    """The model saved in :func:`template_output`, rebuilt from its seed."""
    return tiny_model(0)


@pytest.fixture
def make_output(tmp_path: Path, template_output: Path) -> Callable[..., Path]:
    """Factory of fresh "training output" folders; ``seed`` other than 0 saves different weights."""
    counter = iter(range(10_000))

    def make(seed: int = 0) -> Path:
        folder = tmp_path / f"out-{next(counter)}"
        if seed == 0:
            shutil.copytree(template_output, folder)
        else:
            tiny_model(seed).save_pretrained(folder)
        return folder

    return make


@pytest.fixture(scope="session")
def sqlite_db_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = create_database(f"sqlite:///{tmp_path_factory.mktemp('regdb') / 'registry.db'}")
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def pg_db_session() -> Iterator[Database]:
    """PostgreSQL in a schema of its own (``reg_<random>``) for this test session, dropped at the end."""
    admin = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with admin.connect():
            pass
    except Exception as exc:  # any connection failure means "no server here"
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    schema = f"reg_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = create_database(PG_URL, schema=schema)
    try:
        upgrade(db)
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The same tests on SQLite and on PostgreSQL; registry tables are emptied after each test."""
    name = "sqlite_db_session" if request.param == "sqlite" else "pg_db_session"
    database: Database = request.getfixturevalue(name)
    yield database
    with database.session() as session:
        for table in REGISTRY_TABLES:
            session.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def registry(settings: Settings, db: Database) -> Registry:
    return Registry(settings, db)
