"""The model registry ("parameter server"): numbered versions, movable aliases, a promotion gate.

Files live under ``settings.models_path/<name>/<version>/``; the database says which versions
exist, what their files' SHA-256 digests are and where each alias points. A version folder is
written to a staging folder first and renamed into place inside the transaction that allocates
its number, so readers never see half a model and two registrations never share a number.

Example::

    registry = Registry(settings, db)
    v = registry.register(Path("runs/audit/final"), "order-audit", created_by="alice")
    registry.promote("order-audit", v.version, by="alice")  # gated on the model's metric
    folder = registry.resolve("order-audit:production").path  # -> from_pretrained(folder)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpt2_agent.config import Settings
from gpt2_agent.registry.artifact import (
    LABELS_FILE,
    LINEAGE_FILE,
    METRICS_FILE,
    compare_digests,
    hash_files,
    read_json_object,
    validate_artifact,
)
from gpt2_agent.registry.bundle import read_bundle, write_bundle
from gpt2_agent.registry.errors import ChecksumMismatch, InvalidArtifact, NotFound, PromotionRefused
from gpt2_agent.registry.gate import GateInput, check_gate, default_metric, metric_value, parse_metric
from gpt2_agent.registry.lineage import complete_lineage
from gpt2_agent.registry.records import (
    AliasChange,
    ModelInfo,
    PromotionResult,
    VersionInfo,
    VersionStatus,
)
from gpt2_agent.registry.refs import LATEST, PRODUCTION, check_alias, check_model_name, parse_ref
from gpt2_agent.store import Database, utcnow
from gpt2_agent.store.registry_tables import AliasEvent, ModelAlias, ModelVersion, RegisteredModel

logger = logging.getLogger(__name__)

_STALE_STAGING_SECONDS = 24 * 3600  # a staging folder this old belongs to a crashed registration
_ALLOCATION_ATTEMPTS = 8  # unique-constraint races are retried; more than a handful means a bug
BUNDLES_DIR = ".bundles"  # under models_path; model names cannot start with "."
IMPORTS_DIR = ".imports"


class Registry:
    """Versioned model artifacts with aliases. Thread-safe; share one per process.

    :param settings: uses ``settings.models_path`` for files.
    :param db: a migrated database (``gpt2_agent.store.upgrade``).
    """

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.root = settings.models_path.resolve()

    # ------------------------------------------------------------------ registration

    def register(
        self,
        source: Path | str,
        name: str,
        *,
        task: str | None = None,
        description: str | None = None,
        metrics: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        eval_set_hash: str | None = None,
        created_by: str = "system",
        move: bool = False,
    ) -> VersionInfo:
        """Validate a finished training output folder and register it as the next version of ``name``.

        ``metrics``/``lineage`` are merged over the folder's own ``metrics.json``/``lineage.json``.
        ``eval_set_hash`` defaults to the one in either file. With ``move=True`` the source folder
        is moved in (its metadata files are rewritten) instead of copied.
        Raises :class:`InvalidArtifact` (nothing is written) or :class:`InvalidName`.
        """
        name = check_model_name(name)
        source = Path(source)
        validate_artifact(source)
        model_dir = self.root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        _sweep_stale_staging(model_dir)
        staging = model_dir / f".staging-{uuid.uuid4().hex}"
        moved = False
        try:
            moved = _stage(source, staging, move=move)
            meta = _write_metadata(staging, metrics or {}, lineage or {}, eval_set_hash)
            summary = validate_artifact(staging)  # what we hold now is what gets hashed and served
            files = hash_files(staging, summary.files)
            self._ensure_model(name, task or _infer_task(summary.config), description)
            row = self._commit_version(
                name,
                staging,
                metrics=meta["metrics"],
                lineage=meta["lineage"],
                eval_set_hash=meta["eval_set_hash"],
                files=files,
                created_by=created_by,
            )
        except BaseException:
            if moved and not source.exists() and staging.exists():
                os.replace(staging, source)  # give the caller back their folder
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if move and not moved:
            shutil.rmtree(source, ignore_errors=True)  # moved across file systems: copied, now drop
        logger.info("registered %s:%s (%d files) by %s", name, row.version, len(files), created_by)
        return self.get_version(name, row.version)

    def _ensure_model(self, name: str, task: str, description: str | None) -> None:
        # Two first registrations of a new name race on the unique name; the loser retries and finds it.
        for _ in range(_ALLOCATION_ATTEMPTS):
            try:
                with self.db.write_session() as s:
                    model = s.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
                    if model is None:
                        now = utcnow()
                        s.add(
                            RegisteredModel(
                                name=name,
                                task=task,
                                description=description or "",
                                generation=0,
                                created_at=now,
                                updated_at=now,
                            )
                        )
                    else:
                        if task and not model.task:
                            model.task = task
                        if description:
                            model.description = description
                return
            except IntegrityError:
                continue
        raise RuntimeError(f"could not create model {name!r}: repeated unique-constraint conflicts")

    def _commit_version(
        self,
        name: str,
        staging: Path,
        *,
        metrics: dict[str, Any],
        lineage: dict[str, Any],
        eval_set_hash: str | None,
        files: dict[str, str],
        created_by: str,
    ) -> ModelVersion:
        size = sum((staging / rel).stat().st_size for rel in files)
        for _ in range(_ALLOCATION_ATTEMPTS):
            final: Path | None = None
            try:
                with self.db.write_session() as s:
                    # The row lock serialises registrations of one name on PostgreSQL (SQLite's
                    # BEGIN IMMEDIATE already does); the unique (name, version) is the backstop.
                    model = self._model_row(s, name, lock=True)
                    latest = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name))
                    version = (latest or 0) + 1
                    row = ModelVersion(
                        name=name,
                        version=version,
                        path=f"{name}/{version}",
                        status=VersionStatus.READY.value,
                        metrics=metrics,
                        lineage=lineage,
                        eval_set_hash=eval_set_hash,
                        files=files,
                        size_bytes=size,
                        created_by=created_by,
                        created_at=utcnow(),
                    )
                    s.add(row)
                    s.flush()  # a lost numbering race surfaces here, before any file moves
                    _bump(model)
                    target = self.root / row.path
                    if target.exists():
                        _set_aside(target)
                    os.replace(staging, target)
                    final = target
                    _fsync_dir(target.parent)
                return row
            except IntegrityError:
                if final is not None and final.exists():
                    os.replace(final, staging)
                continue
            except BaseException:
                if final is not None and final.exists():
                    os.replace(final, staging)  # the transaction rolled back; so does the folder
                raise
        raise RuntimeError(f"could not allocate a version of {name!r}: repeated unique-constraint conflicts")

    # ------------------------------------------------------------------ reading

    def list_models(self) -> list[ModelInfo]:
        """Every model, by name, with its latest version and current aliases."""
        with self.db.session() as s:
            models = s.scalars(select(RegisteredModel).order_by(RegisteredModel.name)).all()
            return [self._model_info(s, m) for m in models]

    def get_model(self, name: str) -> ModelInfo:
        """One model; raises :class:`NotFound`."""
        with self.db.session() as s:
            return self._model_info(s, self._model_row(s, check_model_name(name)))

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, oldest first; raises :class:`NotFound` for an unknown model."""
        with self.db.session() as s:
            self._model_row(s, check_model_name(name))
            rows = s.scalars(
                select(ModelVersion).where(ModelVersion.name == name).order_by(ModelVersion.version)
            ).all()
            aliases = self._aliases_by_version(s, name)
            return [self._version_info(r, aliases.get(r.version, [])) for r in rows]

    def get_version(self, name: str, version: int) -> VersionInfo:
        """One version; raises :class:`NotFound`."""
        with self.db.session() as s:
            row = self._version_row(s, check_model_name(name), version)
            return self._version_info(row, self._aliases_by_version(s, name).get(version, []))

    def resolve(self, ref: str, selector: str | int | None = None) -> VersionInfo:
        """Find a version by reference: ``"name"`` (its production version), ``"name:3"``,
        ``"name:candidate"``, ``"name:latest"``, or ``resolve("name", "production")``.
        """
        parsed = parse_ref(ref, selector)
        if parsed.version is not None:
            return self.get_version(parsed.name, parsed.version)
        alias = parsed.alias or PRODUCTION
        with self.db.session() as s:
            self._model_row(s, parsed.name)
            if alias == LATEST:
                version = s.scalar(
                    select(func.max(ModelVersion.version)).where(
                        ModelVersion.name == parsed.name, ModelVersion.status == VersionStatus.READY.value
                    )
                )
                if version is None:
                    raise NotFound(f"model {parsed.name!r} has no ready versions")
            else:
                version = self._alias_row_version(s, parsed.name, alias)
                if version is None:
                    raise NotFound(f"model {parsed.name!r} has no alias {alias!r}")
        return self.get_version(parsed.name, version)

    # ------------------------------------------------------------------ change notification

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at now, or None. One indexed query: cheap enough to poll."""
        with self.db.session() as s:
            return self._alias_row_version(s, name, alias)

    def generation(self, name: str) -> int:
        """A counter that grows on every change to ``name`` (new version, alias move, archive).

        Pollers (serving's hot reload) compare it with the last value they saw; 0 for unknown names.
        """
        with self.db.session() as s:
            value = s.scalar(select(RegisteredModel.generation).where(RegisteredModel.name == name))
            return int(value or 0)

    # ------------------------------------------------------------------ aliases

    def set_alias(self, name: str, alias: str, version: int, *, by: str, reason: str = "") -> AliasChange:
        """Point ``alias`` at ``version`` without the promotion gate (use :meth:`promote` for that)."""
        check_alias(alias)
        with self.db.write_session() as s:
            model = self._model_row(s, check_model_name(name), lock=True)
            self._aliasable_row(s, name, version)
            return self._move_alias(s, model, alias, version, by=by, reason=reason or "set")

    def delete_alias(self, name: str, alias: str, *, by: str, reason: str = "") -> AliasChange:
        """Remove ``alias``; history keeps an event with ``to_version=None``."""
        with self.db.write_session() as s:
            model = self._model_row(s, check_model_name(name), lock=True)
            return self._move_alias(s, model, alias, None, by=by, reason=reason or "removed")

    def promote(
        self,
        name: str,
        version: int,
        alias: str = PRODUCTION,
        *,
        by: str,
        force: bool = False,
        metric: str | None = None,
        reason: str = "",
    ) -> PromotionResult:
        """Move ``alias`` to ``version`` if it beats the current holder on the same eval set.

        ``metric`` overrides the model's configured one (``"max:..."``/``"min:..."`` set the
        direction). Refusals raise :class:`PromotionRefused` quoting both values; ``force=True``
        moves the alias anyway and records why it needed forcing.
        """
        check_alias(alias)
        with self.db.write_session() as s:
            model = self._model_row(s, check_model_name(name), lock=True)
            candidate = self._aliasable_row(s, name, version)
            spec = parse_metric(metric or model.metric or default_metric(model.task))
            current = self._alias_row_version(s, name, alias)
            value = metric_value(candidate.metrics, spec.name)
            previous_value: float | None = None
            forced = False
            if current == version:
                return PromotionResult(
                    name, alias, version, current, spec.name, value, value, False, False, "already there"
                )
            if current is None:
                note = f"first {alias} version"
            else:
                holder = self._version_row(s, name, current)
                previous_value = metric_value(holder.metrics, spec.name)
                try:
                    check_gate(
                        name,
                        alias,
                        GateInput(version, candidate.metrics, candidate.eval_set_hash),
                        GateInput(current, holder.metrics, holder.eval_set_hash),
                        spec,
                    )
                    note = f"{spec.name} {_fmt(value)} beats {_fmt(previous_value)} ({spec.direction})"
                except PromotionRefused as exc:
                    if not force:
                        raise
                    forced = True
                    note = f"forced: {exc}"
            full_reason = f"{reason}; {note}" if reason else note
            self._move_alias(s, model, alias, version, by=by, reason=full_reason)
        logger.info("promoted %s:%s to %s by %s (%s)", name, version, alias, by, full_reason)
        return PromotionResult(
            name, alias, version, current, spec.name, value, previous_value, forced, True, full_reason
        )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Every recorded move of ``alias`` (or of all aliases of ``name``), oldest first."""
        with self.db.session() as s:
            query = select(AliasEvent).where(AliasEvent.name == name)
            if alias is not None:
                query = query.where(AliasEvent.alias == alias)
            rows = s.scalars(query.order_by(AliasEvent.at, AliasEvent.id)).all()
            return [_alias_change(r) for r in rows]

    def alias_at(self, name: str, alias: str, when: dt.datetime) -> int | None:
        """The version ``alias`` pointed at, at time ``when`` (None: not set then). Naive times are UTC."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        with self.db.session() as s:
            row = s.scalars(
                select(AliasEvent)
                .where(AliasEvent.name == name, AliasEvent.alias == alias, AliasEvent.at <= when)
                .order_by(AliasEvent.at.desc(), AliasEvent.id.desc())
                .limit(1)
            ).first()
            return None if row is None else row.to_version

    # ------------------------------------------------------------------ model settings and lifecycle

    def configure_model(
        self,
        name: str,
        *,
        task: str | None = None,
        description: str | None = None,
        metric: str | None = None,
    ) -> ModelInfo:
        """Change a model's task kind, description or promotion metric (``""`` resets the metric)."""
        if metric:
            parse_metric(metric)
        with self.db.write_session() as s:
            model = self._model_row(s, check_model_name(name), lock=True)
            if task is not None:
                model.task = task
            if description is not None:
                model.description = description
            if metric is not None:
                model.metric = metric or None
            _bump(model)
            s.flush()
            return self._model_info(s, model)

    def archive(self, name: str, version: int, *, by: str) -> VersionInfo:
        """Mark a version archived (kept, never aliased again). Refused while an alias points at it."""
        with self.db.write_session() as s:
            model = self._model_row(s, check_model_name(name), lock=True)
            row = self._version_row(s, name, version)
            held = self._aliases_by_version(s, name).get(version, [])
            if held:
                raise PromotionRefused(f"{name}:{version} is still {', '.join(held)}; move the alias first")
            row.status = VersionStatus.ARCHIVED.value
            _bump(model)
        logger.info("archived %s:%s by %s", name, version, by)
        return self.get_version(name, version)

    # ------------------------------------------------------------------ integrity and bundles

    def verify(self, name: str, version: int) -> VersionInfo:
        """Re-hash every file of a version against the digests recorded at registration.

        Raises :class:`ChecksumMismatch` listing modified, missing and unexpected files.
        """
        info = self.get_version(name, version)
        problems = compare_digests(info.files, info.path)
        if problems:
            listing = ", ".join(f"{k} ({v})" for k, v in sorted(problems.items()))
            raise ChecksumMismatch(
                f"{info.ref}: files do not match their recorded SHA-256: {listing}", problems
            )
        return info

    def bundle(self, name: str, version: int, dest: Path | None = None) -> Path:
        """A ``.tar.gz`` of a verified version: ``<name>-v<version>/`` plus a digest manifest.

        Without ``dest`` the bundle is cached under ``models_path/.bundles`` (versions never change,
        so the cache never goes stale). Unpack it with ``tarfile`` ``filter="data"``, or
        :meth:`import_bundle` into another registry.
        """
        info = self.verify(name, version)
        target = dest or self.root / BUNDLES_DIR / name / f"{name}-v{version}.tar.gz"
        if dest is None and target.is_file():
            return target
        manifest = {
            "format": "gpt2-agent-model-bundle/1",
            "name": info.name,
            "version": info.version,
            "task": self.get_model(name).task,
            "eval_set_hash": info.eval_set_hash,
            "files": info.files,
        }
        return write_bundle(
            info.path, sorted(info.files), target, top=f"{name}-v{version}", manifest=manifest
        )

    def import_bundle(
        self, bundle: Path | str, *, name: str | None = None, created_by: str = "import"
    ) -> VersionInfo:
        """Register a bundle made by :meth:`bundle` (here or on another machine) as a new version.

        Refuses links, absolute or ``..`` member names and files that fail their manifest digest.
        The model keeps its name unless ``name`` is given; it gets this registry's next number.
        """
        bundle = Path(bundle)
        scratch_root = self.root / IMPORTS_DIR
        scratch_root.mkdir(parents=True, exist_ok=True)
        with _scratch_dir(scratch_root) as scratch:
            folder, manifest = read_bundle(bundle, scratch)
            target = name or manifest.get("name")
            if not isinstance(target, str):
                raise InvalidArtifact(f"{bundle}: the manifest names no model; pass name=")
            task = manifest.get("task") if isinstance(manifest.get("task"), str) else None
            eval_hash = (
                manifest.get("eval_set_hash") if isinstance(manifest.get("eval_set_hash"), str) else None
            )
            return self.register(
                folder, target, task=task or None, eval_set_hash=eval_hash, created_by=created_by, move=True
            )

    # ------------------------------------------------------------------ row helpers

    def _model_row(self, s: Session, name: str, *, lock: bool = False) -> RegisteredModel:
        query = select(RegisteredModel).where(RegisteredModel.name == name)
        model = s.scalar(query.with_for_update() if lock else query)
        if model is None:
            raise NotFound(f"model {name!r} not found")
        return model

    def _version_row(self, s: Session, name: str, version: int) -> ModelVersion:
        row = s.scalar(select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version))
        if row is None:
            self._model_row(s, name)  # "model not found" beats "version not found" when both hold
            raise NotFound(f"model {name!r} has no version {version}")
        return row

    def _aliasable_row(self, s: Session, name: str, version: int) -> ModelVersion:
        row = self._version_row(s, name, version)
        if row.status != VersionStatus.READY.value:
            raise PromotionRefused(f"{name}:{version} is {row.status}; only ready versions can be aliased")
        return row

    def _alias_row_version(self, s: Session, name: str, alias: str) -> int | None:
        return s.scalar(select(ModelAlias.version).where(ModelAlias.name == name, ModelAlias.alias == alias))

    def _aliases_by_version(self, s: Session, name: str) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        rows = s.execute(
            select(ModelAlias.version, ModelAlias.alias)
            .where(ModelAlias.name == name)
            .order_by(ModelAlias.alias)
        ).all()
        for version, alias in rows:
            out.setdefault(version, []).append(alias)
        return out

    def _move_alias(
        self, s: Session, model: RegisteredModel, alias: str, version: int | None, *, by: str, reason: str
    ) -> AliasChange:
        now = utcnow()
        row = s.scalar(
            select(ModelAlias)
            .where(ModelAlias.name == model.name, ModelAlias.alias == alias)
            .with_for_update()
        )
        previous = row.version if row is not None else None
        if version is None:
            if row is None:
                raise NotFound(f"model {model.name!r} has no alias {alias!r}")
            s.delete(row)
        elif row is None:
            s.add(ModelAlias(name=model.name, alias=alias, version=version, updated_by=by, updated_at=now))
        else:
            row.version, row.updated_by, row.updated_at = version, by, now
        event = AliasEvent(
            name=model.name,
            alias=alias,
            from_version=previous,
            to_version=version,
            who=by,
            at=now,
            reason=reason,
        )
        s.add(event)
        _bump(model, now)
        s.flush()
        return _alias_change(event)

    def _model_info(self, s: Session, model: RegisteredModel) -> ModelInfo:
        latest, count = s.execute(
            select(func.max(ModelVersion.version), func.count(ModelVersion.id)).where(
                ModelVersion.name == model.name
            )
        ).one()
        rows = s.execute(
            select(ModelAlias.alias, ModelAlias.version)
            .where(ModelAlias.name == model.name)
            .order_by(ModelAlias.alias)
        ).all()
        aliases = {alias: version for alias, version in rows}
        return ModelInfo(
            name=model.name,
            task=model.task,
            description=model.description,
            metric=model.metric or default_metric(model.task),
            generation=int(model.generation),
            latest_version=latest,
            version_count=int(count),
            aliases=aliases,
            created_at=model.created_at,
            updated_at=model.updated_at,
        )

    def _version_info(self, row: ModelVersion, aliases: list[str]) -> VersionInfo:
        return VersionInfo(
            name=row.name,
            version=row.version,
            path=self.root / row.path,
            status=row.status,
            metrics=dict(row.metrics or {}),
            lineage=dict(row.lineage or {}),
            eval_set_hash=row.eval_set_hash,
            files=dict(row.files or {}),
            size_bytes=int(row.size_bytes),
            created_by=row.created_by,
            created_at=row.created_at,
            aliases=list(aliases),
        )


# ---------------------------------------------------------------------- module helpers


def _bump(model: RegisteredModel, now: dt.datetime | None = None) -> None:
    model.generation = int(model.generation) + 1
    model.updated_at = now or utcnow()


def _alias_change(row: AliasEvent) -> AliasChange:
    return AliasChange(row.name, row.alias, row.from_version, row.to_version, row.who, row.at, row.reason)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _infer_task(config: dict[str, Any]) -> str:
    """Task kind from ``config.json``'s ``architectures`` (modeling's heads: classify, tag, generate)."""
    for arch in config.get("architectures") or []:
        if not isinstance(arch, str):
            continue
        if arch.endswith("ForSequenceClassification"):
            return "classify"
        if arch.endswith("ForTokenClassification"):
            return "tag"
        if arch.endswith(("LMHeadModel", "ForCausalLM")):
            return "generate"
    return ""


def _stage(source: Path, staging: Path, *, move: bool) -> bool:
    """Put the source's files into ``staging``; True if the folder itself was moved (renamed)."""
    if move:
        try:
            os.rename(source, staging)
            return True
        except OSError:
            logger.info("cannot rename %s into the registry (other file system?); copying", source)
    staging.mkdir()
    for root, _dirs, names in os.walk(source, followlinks=False):
        rel_root = Path(root).relative_to(source)
        (staging / rel_root).mkdir(parents=True, exist_ok=True)
        for file_name in names:
            src = Path(root) / file_name
            if src.is_symlink():
                raise InvalidArtifact(f"{(rel_root / file_name).as_posix()}: symbolic links are refused")
            dst = staging / rel_root / file_name
            shutil.copyfile(src, dst, follow_symlinks=False)
            _fsync_file(dst)
    return False


def _write_metadata(
    folder: Path, metrics: dict[str, Any], lineage: dict[str, Any], eval_set_hash: str | None
) -> dict[str, Any]:
    """Merge and write metrics.json, lineage.json and (if absent) labels.json into ``folder``."""
    config = read_json_object(folder / "config.json", "config.json")
    merged_metrics = _read_optional_object(folder / METRICS_FILE) | metrics
    merged_lineage = _read_optional_object(folder / LINEAGE_FILE) | lineage
    if eval_set_hash is None:
        for candidate in (merged_metrics.get("eval_set_hash"), merged_lineage.get("eval_set_hash")):
            if isinstance(candidate, str) and candidate:
                eval_set_hash = candidate
                break
    merged_lineage = complete_lineage(merged_lineage, eval_set_hash=eval_set_hash, source_config=config)
    _write_json(folder / METRICS_FILE, merged_metrics)
    _write_json(folder / LINEAGE_FILE, merged_lineage)
    if not (folder / LABELS_FILE).exists():
        _write_json(folder / LABELS_FILE, _labels_from_config(config))
    return {"metrics": merged_metrics, "lineage": merged_lineage, "eval_set_hash": eval_set_hash}


def _read_optional_object(path: Path) -> dict[str, Any]:
    return read_json_object(path, path.name) if path.exists() else {}


def _labels_from_config(config: dict[str, Any]) -> list[str]:
    """Label names in id order for classify/tag heads (GPT-2 configs always carry a default id2label)."""
    if _infer_task(config) not in ("classify", "tag"):
        return []
    id2label = config.get("id2label") or {}
    try:
        return [str(label) for _, label in sorted(id2label.items(), key=lambda kv: int(kv[0]))]
    except (TypeError, ValueError):
        return []


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    _fsync_file(path)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened for this.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sweep_stale_staging(model_dir: Path) -> None:
    cutoff = time.time() - _STALE_STAGING_SECONDS
    for path in model_dir.glob(".staging-*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                logger.warning("removing stale staging folder %s", path)
                shutil.rmtree(path, ignore_errors=True)


def _set_aside(path: Path) -> None:
    """Move a folder with no database row (left by a crash before commit) out of the way."""
    orphan = path.with_name(f".orphan-{path.name}-{uuid.uuid4().hex[:8]}")
    logger.warning("version folder %s has no database row; moving it to %s", path, orphan)
    os.replace(path, orphan)


@contextlib.contextmanager
def _scratch_dir(parent: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="import-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
