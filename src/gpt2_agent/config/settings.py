"""Settings, read from ``GPT2_AGENT_*`` environment variables and an optional TOML file.

Precedence (highest first): keyword overrides, environment variables, the TOML file
named by ``GPT2_AGENT_CONFIG_FILE`` (or passed to :func:`load_settings`), defaults.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "GPT2_AGENT_"
CONFIG_FILE_ENV = "GPT2_AGENT_CONFIG_FILE"


class Settings(BaseSettings):
    """Effective configuration. Paths left unset are derived from ``home``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    home: Path = Path("./.gpt2-agent")
    database_url: str = ""
    # NORMAL: a killed process loses nothing; a power loss may roll back the last commits
    # (re-run at least once; idempotency keys guard side effects). FULL adds an fsync per commit.
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "NORMAL"
    executor: Literal["local", "celery"] = "local"
    executor_concurrency: int = Field(default=8, ge=1, le=512)
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Celery transport. Queue names get this prefix so several installations can share a broker.
    broker_queue_prefix: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9_.:-]*$")
    # Route task types to named queues (e.g. {"train.model": "training"}); overrides the queue a
    # type registered with. Workers consume queues (``gpt2-agent worker --queues training``).
    task_queues: dict[str, str] = Field(default_factory=dict)
    # Each process re-publishes queued, due tasks that no message was sent for (broker was down,
    # retry backoff ended) every ``dispatch_interval_seconds``; a task still queued
    # ``dispatch_republish_seconds`` after its message was sent is published again (lost message).
    dispatch_interval_seconds: float = Field(default=2.0, gt=0)
    dispatch_republish_seconds: float = Field(default=120.0, gt=0)
    worker_max_tasks_per_child: int = Field(default=1000, ge=1)
    plugins: list[str] = Field(default_factory=list)
    workflows_dir: Path | None = None

    # Engine timing. Leases are what make crashed workers visible; keep heartbeat < lease / 2.
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    sweep_interval_seconds: float = Field(default=2.0, gt=0)
    poll_interval_seconds: float = Field(default=0.5, gt=0)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=1)

    # SMTP for send_email.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "gpt2-agent@localhost"
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0

    # Storage for uploaded files and receipts.
    storage_dir: Path | None = None
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)

    # Models and data.
    models_dir: Path | None = None
    warehouse_url: str = ""
    # Serving: CPUs for inference (0: every CPU this process may use), split among this many
    # parallel forward passes per model (1: one pass on all of them; one per CPU holds up better
    # on a shared host), and the largest drop in accuracy on the check sample that int8
    # quantization may cause before it is refused.
    serving_threads: int = Field(default=0, ge=0, le=1024)
    serving_workers: int = Field(default=1, ge=1, le=1024)
    serving_quantize_tolerance: float = Field(default=0.01, ge=0.0, le=1.0)

    # Orders. The payment gateway is "sandbox" (the warehouse's accounts and cards) or
    # "package.module:factory", a callable taking the settings and returning a PaymentGateway.
    payment_gateway: str = "sandbox"
    # Automation gate: auto-approve at probability >= min and amount <= max amount, auto-reject at
    # probability <= max, escalate to a person otherwise. Overrides per workflow name, e.g.
    # {"order-fulfillment": {"auto_approve_max_amount": "200.00"}}.
    gate_auto_approve_min_probability: float = Field(default=0.95, ge=0.0, le=1.0)
    gate_auto_reject_max_probability: float = Field(default=0.05, ge=0.0, le=1.0)
    gate_auto_approve_max_amount: Decimal = Field(default=Decimal("500.00"), ge=0, allow_inf_nan=False)
    gate_workflow_overrides: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    # What the gate's choices cost, in the order's currency (rewards of the learned gate are the
    # negative costs): a person's review; an approval that turns out fraudulent (the chargeback:
    # fixed fee + rate x amount); a rejection of a good order (the lost sale: fixed + rate x amount).
    gate_review_cost: float = Field(default=8.0, ge=0, allow_inf_nan=False)
    gate_wrong_approval_fixed: float = Field(default=15.0, ge=0, allow_inf_nan=False)
    gate_wrong_approval_rate: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    gate_wrong_rejection_fixed: float = Field(default=5.0, ge=0, allow_inf_nan=False)
    gate_wrong_rejection_rate: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    # Hard rule of every learned policy: escalate while the audit model's probability is in this band.
    gate_unsure_min_probability: float = Field(default=0.4, ge=0.0, le=1.0)
    gate_unsure_max_probability: float = Field(default=0.6, ge=0.0, le=1.0)
    # The learned gate serves the production version of this registry model; it explores with a
    # probability between the two bounds and checks the registry for a new version this often.
    gate_policy_model: str = "gate-policy"
    gate_explore_min: float = Field(default=0.01, ge=0.0, le=0.5)
    gate_explore_max: float = Field(default=0.1, ge=0.0, le=0.5)
    gate_policy_reload_seconds: float = Field(default=5.0, ge=0.0)
    # A tabular policy keeps learning in the serving process from the joined feedback log
    # (exploration stays within the bounds above; the hard rules still apply).
    gate_online_learning: bool = False

    # NLU and chat. The parser serves ``nlu_alias`` of model ``nlu_model`` and reloads when the
    # registry changes (checked at most every ``nlu_reload_interval_seconds``). Below
    # ``nlu_min_confidence`` (unset: the value stored with the model) the intent is out_of_scope.
    nlu_model: str = "nlu"
    nlu_alias: str = "production"
    nlu_min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    nlu_max_text_chars: int = Field(default=1000, ge=1, le=100_000)
    nlu_reload_interval_seconds: float = Field(default=5.0, ge=0.0)
    nlu_max_batch: int = Field(default=32, ge=1, le=1024)

    # POST /order/audit without an API key (the original one-page form sends none): demo only.
    seed_route_open: bool = False

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    page_size_max: int = Field(default=200, ge=1)

    # Web console sessions. Unset secret: a random one is generated and kept in HOME/web_session_secret.
    web_session_secret: SecretStr | None = None
    web_session_max_age_seconds: int = Field(default=12 * 3600, ge=60)

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        home = self.home.expanduser()
        self.home = home
        if not self.database_url:
            self.database_url = f"sqlite:///{(home / 'gpt2-agent.db').resolve()}"
        if self.storage_dir is None:
            self.storage_dir = home / "storage"
        if self.models_dir is None:
            self.models_dir = home / "models"
        if not self.warehouse_url:
            self.warehouse_url = f"sqlite:///{(home / 'warehouse.db').resolve()}"
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("heartbeat_seconds must be smaller than lease_seconds")
        return self

    @property
    def storage_path(self) -> Path:
        """Storage folder (never None after validation)."""
        assert self.storage_dir is not None
        return self.storage_dir

    @property
    def models_path(self) -> Path:
        """Model registry folder (never None after validation)."""
        assert self.models_dir is not None
        return self.models_dir

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = os.environ.get(CONFIG_FILE_ENV)
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``config_file`` names a TOML file (else ``GPT2_AGENT_CONFIG_FILE``)."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        previous = os.environ.get(CONFIG_FILE_ENV)
        os.environ[CONFIG_FILE_ENV] = str(path)
        try:
            return Settings(**overrides)
        finally:
            if previous is None:
                os.environ.pop(CONFIG_FILE_ENV, None)
            else:
                os.environ[CONFIG_FILE_ENV] = previous
    return Settings(**overrides)


_SECRET_WORDS = ("password", "secret", "token")


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-able values, with secrets and URL passwords masked."""
    out: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr) or (value is not None and any(w in name for w in _SECRET_WORDS)):
            out[name] = "********" if value else None
        elif isinstance(value, Path):
            out[name] = str(value)
        elif isinstance(value, str) and "://" in value and "@" in value:
            out[name] = _mask_url(value)
        else:
            out[name] = value
    return out


def _mask_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:********@{host}"
    return url
