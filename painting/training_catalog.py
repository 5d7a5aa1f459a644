"""The catalog's training runs: their records and loss curves (part of `painting.catalog.Catalog`).

    run = catalog.create_training(kind="cyclegan", params=p.model_dump(mode="json"), steps=2000,
                                  model_name="monet", counts={"photos": 400, "paintings": 300})
    catalog.transition_training(run.id, Status.RUNNING, from_={Status.QUEUED})
    catalog.record_training_progress(run.id, TrainingPoint(1, {"generator": 3.1}, 0.8, 0.8), sample_image=s.id)
    catalog.transition_training(run.id, Status.DONE)

The same rules as paintings: every write is one transaction, status changes are conditional, an
idempotency key already used returns its record, `scope` keeps Studio's and Gallery's apart, and a
training's sample images count as referenced for `gc` (see `Catalog.image_references`).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from painting import db
from painting.errors import CorruptRecord, NotFound
from painting.images import check_image_id
from painting.records import UNFINISHED, Status, TrainingPoint, TrainingRecord, check_painting_id, new_painting_id

if TYPE_CHECKING:
    from datetime import datetime

MAX_TRAININGS_PAGE = 500


class TrainingsMixin:
    """The training methods of `Catalog` (which provides `scope`, `backend`, `_read`, `_write`)."""

    scope: str

    if TYPE_CHECKING:

        @property
        def backend(self) -> str: ...

        def _read(self) -> AbstractContextManager[Session]: ...

        def _write(self) -> AbstractContextManager[Session]: ...

        @staticmethod
        def _checked_fields(fields: dict[str, Any]) -> dict[str, Any]: ...

        def _now(self) -> datetime: ...

        def _add_remote_action(
            self, s: Session, remote_id: str, action: Any, remote_url: str | None, target: Any = "job"
        ) -> None: ...

    # -- creating ------------------------------------------------------------------------------

    def create_training(
        self,
        *,
        kind: str,
        params: dict[str, Any],
        steps: int,
        model_name: str,
        counts: dict[str, int],
        status: Status = Status.QUEUED,
        training_id: str | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        remote_id: str | None = None,
        remote_url: str | None = None,
    ) -> TrainingRecord:
        """Store a new training run and return it; an `idempotency_key` this scope has used already
        returns that run and writes nothing."""
        if kind not in ("cyclegan", "dcgan"):
            raise ValueError(f"a training is a cyclegan or a dcgan, not {kind!r}")
        if type(steps) is not int or steps < 1:
            raise ValueError("a training has 1 step or more")
        if not model_name or len(model_name) > 64:
            raise ValueError("a model name is 1 to 64 characters")
        if idempotency_key is not None and (not 1 <= len(idempotency_key) <= 200 or "\x00" in idempotency_key):
            raise ValueError("an idempotency key must be 1 to 200 characters, without NUL")
        training_id = new_painting_id() if training_id is None else check_painting_id(training_id)
        now = self._now()
        row = {
            "id": training_id,
            "scope": self.scope,
            "created_at": now,
            "updated_at": now,
            "status": Status(status).value,
            "kind": kind,
            "params": dict(params),
            "model_name": model_name,
            "counts": {str(k): int(v) for k, v in counts.items()},
            "step": 0,
            "steps": steps,
            "losses": None,
            "seconds_per_step": None,
            "checkpoint_step": None,
            "sample_image": None,
            "error": None,
            "attempts": 0,
            "idempotency_key": idempotency_key,
            "owner": owner,
            **self._checked_fields({"remote_id": remote_id, "remote_url": remote_url}),
            "remote_cursor": None,
        }
        t = db.TrainingRow
        try:
            with self._write() as s:
                if idempotency_key is not None:
                    found = s.scalar(sa.select(t).where(t.scope == self.scope, t.idempotency_key == idempotency_key))
                    if found is not None:
                        return _training(found)
                s.execute(sa.insert(t), [row])
        except IntegrityError:  # a concurrent create with the same key won the race
            if idempotency_key is not None:
                existing = self.find_training_by_idempotency_key(idempotency_key)
                if existing is not None:
                    return existing
            raise
        return self.get_training(training_id)

    # -- reading -------------------------------------------------------------------------------

    def get_training(self, training_id: str) -> TrainingRecord:
        """The training run with this id; raises NotFound (InvalidId for a malformed id)."""
        check_painting_id(training_id)
        with self._read() as s:
            row = s.get(db.TrainingRow, training_id)
            if row is None or row.scope != self.scope:
                raise NotFound("No training with that id.")
            return _training(row)

    def find_training_by_idempotency_key(self, key: str) -> TrainingRecord | None:
        t = db.TrainingRow
        with self._read() as s:
            row = s.scalar(sa.select(t).where(t.scope == self.scope, t.idempotency_key == key))
            return None if row is None else _training(row)

    def newest_trainings(self, *, limit: int = 100) -> list[TrainingRecord]:
        """Training runs, newest first."""
        t = db.TrainingRow
        query = (
            sa.select(t)
            .where(t.scope == self.scope)
            .order_by(t.created_at.desc(), t.id.desc())
            .limit(max(1, min(limit, MAX_TRAININGS_PAGE)))
        )
        with self._read() as s:
            return [_training(row) for row in s.scalars(query)]

    def unfinished_trainings(self) -> list[TrainingRecord]:
        """Training runs queued, waiting or running, oldest first: the work to pick up after a restart."""
        t = db.TrainingRow
        query = (
            sa.select(t)
            .where(t.scope == self.scope, t.status.in_(sorted(s.value for s in UNFINISHED)))
            .order_by(t.created_at, t.id)
        )
        with self._read() as s:
            return [_training(row) for row in s.scalars(query)]

    def training_progress(self, training_id: str) -> list[TrainingPoint]:
        """A training's loss curves, step by step. Raises NotFound."""
        self.get_training(training_id)
        p = db.TrainingProgressRow
        with self._read() as s:
            rows = s.scalars(sa.select(p).where(p.training_id == training_id).order_by(p.step))
            return [_point(row) for row in rows]

    # -- changing ------------------------------------------------------------------------------

    def _update_training(
        self, s: Session, training_id: str, allowed_from: Iterable[Status] | None, values: dict[str, Any]
    ) -> bool:
        t = db.TrainingRow
        stmt = sa.update(t).where(t.id == training_id, t.scope == self.scope)
        if allowed_from is not None:
            stmt = stmt.where(t.status.in_(sorted(Status(x).value for x in allowed_from)))
        result = cast(
            "CursorResult[Any]",
            s.execute(stmt.values(updated_at=self._now(), **values).execution_options(synchronize_session=False)),
        )
        if result.rowcount == 1:
            return True
        if s.scalar(sa.select(t.id).where(t.id == training_id, t.scope == self.scope)) is None:
            raise NotFound("No training with that id.")
        return False

    def transition_training(
        self,
        training_id: str,
        to: Status,
        *,
        from_: Iterable[Status] = UNFINISHED,
        bump_attempts: bool = False,
        cancel_remote: bool = False,
        **fields: Any,
    ) -> bool:
        """Move a training to `to` only from one of `from_` (one UPDATE), and set `fields` (step, error,
        sample_image, checkpoint_step, attempts, remote_id, remote_url, remote_cursor). Whether it
        applied. `cancel_remote`: when it applied, its run at the other side (if any) is added to
        `remote_actions` as a training's "cancel", in the same transaction. Raises NotFound,
        TypeError for an unknown field, ValueError for a bad value."""
        check_painting_id(training_id)
        values = {"status": Status(to).value, **_checked_training_fields(self, fields)}
        if bump_attempts:
            values["attempts"] = db.TrainingRow.attempts + 1
        with self._write() as s:
            applied = self._update_training(s, training_id, list(from_), values)
            if applied and cancel_remote:
                t = db.TrainingRow
                remote = s.execute(sa.select(t.remote_id, t.remote_url).where(t.id == training_id)).one()
                if remote.remote_id is not None:
                    self._add_remote_action(s, remote.remote_id, "cancel", remote.remote_url, "training")
            return applied

    def record_training_progress(
        self,
        training_id: str,
        point: TrainingPoint,
        *,
        sample_image: str | None = None,
        checkpoint_step: int | None = None,
        remote_cursor: str | None = None,
        only_if: Iterable[Status] = UNFINISHED,
    ) -> bool:
        """Add a step to the loss curves and move the run to it (its losses, its seconds a step, and the
        sample, checkpoint and cursor given): one transaction, only while its status is one of `only_if`.
        A step already recorded is replaced (a resumed run repeats steps). Whether it applied."""
        check_painting_id(training_id)
        values: dict[str, Any] = {
            "step": point.step,
            "losses": TrainingPoint.to_json(point)["losses"],
            "seconds_per_step": point.seconds_per_step,
            **_checked_training_fields(
                self, {"sample_image": sample_image, "checkpoint_step": checkpoint_step, "remote_cursor": remote_cursor}
            ),
        }
        values = {k: v for k, v in values.items() if v is not None or k in ("losses",)}
        row = {"training_id": training_id, **{k: v for k, v in point.to_json().items()}}
        dialect = postgresql if self.backend == "postgresql" else sqlite
        upsert = dialect.insert(db.TrainingProgressRow).values(row)
        upsert = upsert.on_conflict_do_update(
            index_elements=["training_id", "step"],
            set_={k: upsert.excluded[k] for k in ("losses", "seconds_per_step", "elapsed_s")},
        )
        with self._write() as s:
            if not self._update_training(s, training_id, list(only_if), values):
                return False
            s.execute(upsert)
            return True

    def delete_training(self, training_id: str, *, forget_remote: bool = False) -> bool:
        """Remove a training run and its curves; whether there was one. Its sample images stay in the
        store until `gc` finds nothing refers to them. `forget_remote`: its run at the other side (if
        any) is added to `remote_actions` as a training's "forget", in the same transaction."""
        check_painting_id(training_id)
        t, p = db.TrainingRow, db.TrainingProgressRow
        with self._write() as s:
            found = s.execute(
                sa.select(t.remote_id, t.remote_url).where(t.id == training_id, t.scope == self.scope)
            ).first()
            if found is None:
                return False
            if forget_remote and found.remote_id is not None:
                self._add_remote_action(s, found.remote_id, "forget", found.remote_url, "training")
            s.execute(sa.delete(p).where(p.training_id == training_id))
            s.execute(sa.delete(t).where(t.id == training_id))
            return True


def _checked_training_fields(catalog: TrainingsMixin, fields: dict[str, Any]) -> dict[str, Any]:
    known = {"step", "error", "sample_image", "checkpoint_step", "attempts", "remote_id", "remote_url", "remote_cursor"}
    unknown = set(fields) - known
    if unknown:
        raise TypeError(f"unknown training fields: {', '.join(sorted(unknown))}")
    checked: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "sample_image":
            checked[name] = None if value is None else check_image_id(value)
        elif name in ("step", "checkpoint_step", "attempts"):
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"{name}: a whole number, 0 or more")
            checked[name] = value
        else:
            checked.update(catalog._checked_fields({name: value}))
    return checked


def _training(row: db.TrainingRow) -> TrainingRecord:
    try:
        status = Status(row.status)
    except ValueError as exc:
        raise CorruptRecord(f"Training {row.id} has stored data that no longer validates: {exc}") from exc
    return TrainingRecord(
        id=row.id,
        scope=row.scope,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=status,
        kind=row.kind,
        params=dict(row.params),
        model_name=row.model_name,
        counts={str(k): int(v) for k, v in (row.counts or {}).items()},
        step=row.step,
        steps=row.steps,
        losses=None
        if row.losses is None
        else {k: float("nan") if v is None else float(v) for k, v in row.losses.items()},
        seconds_per_step=row.seconds_per_step,
        checkpoint_step=row.checkpoint_step,
        sample_image=row.sample_image,
        error=row.error,
        attempts=row.attempts,
        idempotency_key=row.idempotency_key,
        owner=row.owner,
        remote_id=row.remote_id,
        remote_url=row.remote_url,
        remote_cursor=row.remote_cursor,
    )


def _losses(stored: dict[str, Any]) -> dict[str, float]:
    """Losses as stored (JSON has no NaN: a diverged loss is null) back to floats."""
    return {k: float("nan") if v is None else float(v) for k, v in stored.items()}


def _point(row: db.TrainingProgressRow) -> TrainingPoint:
    return TrainingPoint(row.step, _losses(row.losses), row.seconds_per_step, row.elapsed_s)


__all__ = ["MAX_TRAININGS_PAGE", "TrainingsMixin"]
