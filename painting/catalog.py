"""Painting records: a small typed API over SQLite (default) or PostgreSQL.

    catalog = Catalog.open(None, Path("data"), scope="gallery")   # SQLite file, migrated to head
    rec = catalog.create(params=Params(), content_image=ref.id, style_images=[s.id])
    catalog.transition(rec.id, Status.RUNNING, from_={Status.QUEUED}, remote_id="job-1")
    catalog.record_progress(rec.id, ProgressPoint(...), preview_image=preview.id)
    catalog.transition(rec.id, Status.DONE, from_={Status.RUNNING}, result_image=result.id)

Callers get the frozen values of `painting.records` and `painting.progress`, never ORM objects, and write
no SQL. Every write is one transaction. Status changes are conditional (`transition` applies only
from the statuses it is given and says whether it did), so a painting that is done, failed or
cancelled can never be moved back to running by a late message.

`scope` keeps Gallery's paintings and Studio's jobs apart when the two share one database; image
references (`image_references`, used by `gc` and `fsck`) cover every scope, because the image store
may be shared too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast, get_args

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from painting import db
from painting.errors import CatalogError, CorruptRecord, NotFound, PaintingFinished, StorageUnavailable
from painting.images import check_image_id
from painting.params import Params, parse_weights, weights_of
from painting.progress import ProgressPoint
from painting.records import (
    FINISHED,
    UNFINISHED,
    ImageReference,
    PaintingRecord,
    Status,
    StyleImage,
    WeightChange,
    check_painting_id,
    new_painting_id,
)
from painting.training_catalog import TrainingsMixin

CATALOG_FILENAME = "catalog.sqlite3"
MAX_PAGE = 500
MAX_ERROR_CHARS = 10_000
MAX_WEIGHT_CHANGES = 100  # per painting: the page's history and the marks on its loss curve stay readable
RemoteAction = Literal["cancel", "forget", "weights"]
REMOTE_ACTIONS: tuple[RemoteAction, ...] = get_args(RemoteAction)


RemoteTarget = Literal["job", "training"]


class DueAction(NamedTuple):
    """What the other side must still do to one of its jobs: the action, when it was (last) asked,
    where that side is (`remote_url`: which Studio; None for the only one), and whether it is a
    painting's job or a training run (`target`)."""

    action: RemoteAction
    asked: datetime
    remote_url: str | None
    target: RemoteTarget = "job"


_SCOPE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_OWNER_RE = re.compile(r"[0-9a-f]{64}")
# What a database says when the fault is the machine's (disk full or read-only, I/O error, server
# gone), as opposed to a bug or a constraint: the callers may try again later.
_UNAVAILABLE = (OperationalError, InterfaceError)


def _reason(exc: Exception) -> str:
    """The database's own words, first line only (no SQL, no parameters)."""
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0][:300] if str(orig).strip() else type(orig).__name__


# Fields `update` and `transition` may set, each with its check.
def _check_optional_image(value: object) -> str | None:
    return None if value is None else check_image_id(value)


def _check_count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a whole number >= 0, got {value!r}")
    return value


def _check_text(limit: int, *, truncate: bool = False) -> Any:
    def check(value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {type(value).__name__}")
        if "\x00" in value:  # PostgreSQL cannot store NUL in text; refuse it on SQLite too
            if not truncate:
                raise ValueError("text must not contain NUL characters")
            value = value.replace("\x00", "\ufffd")
        if len(value) > limit:
            if truncate:
                return value[: limit - 1] + "…"
            raise ValueError(f"text longer than {limit} characters")
        return value

    return check


_FIELDS: dict[str, Any] = {
    "preview_image": _check_optional_image,
    "result_image": _check_optional_image,
    "iteration": _check_count,
    "attempts": _check_count,
    "error": _check_text(MAX_ERROR_CHARS, truncate=True),
    "remote_id": _check_text(200),
    "remote_url": _check_text(2000),
    "remote_cursor": _check_text(200),
    "preview_iteration": lambda value: None if value is None else _check_count(value),
}


def _checked_fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown painting fields: {', '.join(sorted(unknown))}")
    return {name: _FIELDS[name](value) for name, value in fields.items()}


def _checked_owner(owner: str | None) -> str | None:
    if owner is not None and not _OWNER_RE.fullmatch(owner):
        raise ValueError("an owner is a digest: 64 lowercase hex digits")
    return owner


def _checked_holder(holder: object) -> str:
    if not isinstance(holder, str) or not 1 <= len(holder) <= 200:
        raise ValueError("a lease holder is a name of 1 to 200 characters")
    return holder


def _statuses(statuses: Iterable[Status | str]) -> list[str]:
    return sorted(Status(s).value for s in statuses)


def _now() -> datetime:
    return datetime.now(UTC)


def _weight_changes(row: db.PaintingRow) -> tuple[WeightChange, ...]:
    """A row's history of weight changes (None: none), as records."""
    try:
        return tuple(
            WeightChange(
                iteration=change["iteration"],
                weights={str(k): float(v) for k, v in change["weights"].items()},
                at=datetime.fromisoformat(change["at"]),
            )
            for change in row.weight_changes or []
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptRecord(f"Painting {row.id} has a history of weights that cannot be read: {exc!r}") from exc


def _same_weights(asked: Mapping[str, float], painted: Mapping[str, float]) -> bool:
    """Whether the weights a worker reports painting with are the ones asked for (float32 may round)."""
    return all(
        isinstance(painted.get(name), int | float) and math.isclose(value, painted[name], rel_tol=1e-5, abs_tol=1e-12)
        for name, value in asked.items()
    )


class Catalog(TrainingsMixin):
    """The painting records of one scope, in a SQLite or PostgreSQL database.

    Opening one migrates the database to the newest schema (pass `migrate=False` to only check
    that it is there). Thread-safe; close it (or use `with`) to release its connections.
    """

    def __init__(self, url: str, *, scope: str = "default", migrate: bool = True) -> None:
        if not _SCOPE_RE.fullmatch(scope):
            raise ValueError("scope must be a short lowercase name, e.g. 'gallery'")
        self.scope = scope
        self._engine = db.make_engine(url)
        self._writer = db.writer(self._engine)
        try:
            if migrate:
                db.upgrade(self._engine)
            else:
                current, head = db.current_revision(self._engine), db.head_revision()
                if current != head:
                    raise CatalogError(
                        f"The painting database is at schema revision {current or 'none (empty)'}, "
                        f"not {head}; start the service once to migrate it."
                    )
        except BaseException:
            self._engine.dispose()
            raise

    # What the training methods (TrainingsMixin) share with the painting ones.
    _checked_fields = staticmethod(_checked_fields)

    def _now(self) -> datetime:
        return _now()

    @classmethod
    def open(cls, url: str | None, data_dir: str | Path, *, scope: str = "default", migrate: bool = True) -> Catalog:
        """A catalog at `url`, or without one the SQLite file `catalog.sqlite3` in `data_dir`."""
        if url is None:
            url = db.sqlite_url(Path(data_dir) / CATALOG_FILENAME)
        return cls(url, scope=scope, migrate=migrate)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def backend(self) -> str:
        """The database in use: 'sqlite' or 'postgresql'."""
        return self._engine.dialect.name

    def __repr__(self) -> str:
        return f"Catalog({self.url!r}, scope={self.scope!r})"

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with Session(self._engine) as session, session.begin():
                yield session
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"The painting database cannot be read: {_reason(exc)}") from exc

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with Session(self._writer) as session, session.begin():
                yield session
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"The painting database cannot be written: {_reason(exc)}") from exc

    def check_writable(self) -> None:
        """Write one small row (this scope's health row); StorageUnavailable when the database cannot.

        A read would succeed on a read-only or full disk; readiness must know that writes work.
        """
        dialect = postgresql if self.backend == "postgresql" else sqlite
        now = _now()
        upsert = dialect.insert(db.HealthRow).values(scope=self.scope, checked_at=now)
        with self._write() as s:
            s.execute(upsert.on_conflict_do_update(index_elements=["scope"], set_={"checked_at": now}))

    # -- creating ------------------------------------------------------------------------------

    def create(
        self,
        *,
        params: Params,
        content_image: str | None,
        style_images: Sequence[str],
        status: Status = Status.QUEUED,
        painting_id: str | None = None,
        idempotency_key: str | None = None,
        owner: str | None = None,
        remote_id: str | None = None,
        remote_url: str | None = None,
        resume_from: tuple[str, int] | None = None,
    ) -> PaintingRecord:
        """Store a new painting and return it.

        `resume_from` (an image id and the iteration it shows) makes a painting that starts there,
        as one moved from another Studio: its preview and its iteration are that point, so its
        first run resumes from it.

        The style blend weights come from `params.blend_for(len(style_images))` (ValueError when
        they do not fit). A generator model's painting (engine `model`), or one in the fast engine's
        built-in styles, has no style images, and a latent model's none of a photo either
        (`content_image=None`); every other painting needs both.
        With an `idempotency_key` that this scope already has, nothing is written and the existing
        painting is returned: a retried request never makes two.
        """
        if not isinstance(params, Params):
            raise TypeError("params must be a painting.params.Params")
        if content_image is not None:
            check_image_id(content_image)
        elif params.engine != "model":
            raise ValueError(f"a painting by the {params.engine} engine needs a photo")
        for image_id in style_images:
            check_image_id(image_id)
        if not params.takes_styles:  # a generator model's, or the fast engine's built-in styles
            if style_images:
                raise ValueError(f"a painting by {params.model or 'built-in styles'} takes no style images")
            weights: list[float] = []
        else:
            weights = params.blend_for(len(style_images))
        painting_id = new_painting_id() if painting_id is None else check_painting_id(painting_id)
        if idempotency_key is not None and (not 1 <= len(idempotency_key) <= 200 or "\x00" in idempotency_key):
            raise ValueError("an idempotency key must be 1 to 200 characters, without NUL")
        fields = _checked_fields({"remote_id": remote_id, "remote_url": remote_url})
        preview, at = (None, None) if resume_from is None else resume_from
        if preview is not None:
            check_image_id(preview)
            if _check_count(at) >= params.steps:
                raise ValueError(f"a painting of {params.steps} steps cannot start at iteration {at}")
        now = _now()
        row = {
            "id": painting_id,
            "scope": self.scope,
            "created_at": now,
            "updated_at": now,
            "status": Status(status).value,
            "params": params.model_dump(mode="json"),
            "content_image": content_image,
            "preview_image": preview,
            "preview_iteration": at,
            "result_image": None,
            "iteration": at or 0,
            "iterations": params.steps,
            "error": None,
            "remote_cursor": None,
            "attempts": 0,
            "idempotency_key": idempotency_key,
            "owner": _checked_owner(owner),
            **fields,
        }
        styles = [
            {"painting_id": painting_id, "position": i, "image_id": image_id, "weight": weight}
            for i, (image_id, weight) in enumerate(zip(style_images, weights, strict=True))
        ]
        try:
            with self._write() as s:
                if idempotency_key is not None:
                    existing = self._by_key(s, idempotency_key)
                    if existing is not None:
                        return existing
                s.execute(sa.insert(db.PaintingRow), [row])
                if styles:  # an empty executemany would insert one row of NULLs
                    s.execute(sa.insert(db.StyleRow), styles)
        except IntegrityError:
            # PostgreSQL: a concurrent create with the same key won the race; answer with its row.
            if idempotency_key is not None:
                found = self.find_by_idempotency_key(idempotency_key)
                if found is not None:
                    return found
            raise
        return self.get(painting_id)

    # -- reading -------------------------------------------------------------------------------

    def get(self, painting_id: str) -> PaintingRecord:
        """The painting with this id; raises NotFound (InvalidId for a malformed id)."""
        check_painting_id(painting_id)
        with self._read() as s:
            row = s.get(db.PaintingRow, painting_id)
            if row is None or row.scope != self.scope:
                raise NotFound("No painting with that id.")
            return self._records(s, [row])[0]

    def find_by_idempotency_key(self, key: str) -> PaintingRecord | None:
        """The painting created with this idempotency key, if any."""
        with self._read() as s:
            return self._by_key(s, key)

    def find_by_remote_id(self, remote_id: str) -> PaintingRecord | None:
        """The painting whose job on the other side is `remote_id`, if any."""
        p = db.PaintingRow
        with self._read() as s:
            row = s.scalars(sa.select(p).where(p.scope == self.scope, p.remote_id == remote_id)).first()
            return None if row is None else self._records(s, [row])[0]

    def _by_key(self, s: Session, key: str) -> PaintingRecord | None:
        row = s.scalars(
            sa.select(db.PaintingRow).where(db.PaintingRow.scope == self.scope, db.PaintingRow.idempotency_key == key)
        ).first()
        return None if row is None else self._records(s, [row])[0]

    def newest(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        statuses: Collection[Status] | None = None,
        owner: str | None = None,
    ) -> list[PaintingRecord]:
        """Paintings newest first: `limit` of them (1 to 500) after skipping `offset`; only
        `owner`'s when given."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
        if offset < 0:
            raise ValueError("offset must be >= 0")
        query = sa.select(db.PaintingRow).where(db.PaintingRow.scope == self.scope)
        if statuses is not None:
            query = query.where(db.PaintingRow.status.in_(_statuses(statuses)))
        if owner is not None:
            query = query.where(db.PaintingRow.owner == owner)
        query = query.order_by(db.PaintingRow.created_at.desc(), db.PaintingRow.id.desc())
        with self._read() as s:
            rows = list(s.scalars(query.limit(limit).offset(offset)))
            return self._records(s, rows)

    def count(self, *, statuses: Collection[Status] | None = None, owner: str | None = None) -> int:
        """How many paintings there are (with one of `statuses`, and `owner`'s, when given)."""
        query = sa.select(sa.func.count()).select_from(db.PaintingRow).where(db.PaintingRow.scope == self.scope)
        if statuses is not None:
            query = query.where(db.PaintingRow.status.in_(_statuses(statuses)))
        if owner is not None:
            query = query.where(db.PaintingRow.owner == owner)
        with self._read() as s:
            return int(s.execute(query).scalar_one())

    def unfinished(self) -> list[PaintingRecord]:
        """Paintings queued, waiting or running, oldest first: the work to pick up after a restart."""
        query = (
            sa.select(db.PaintingRow)
            .where(db.PaintingRow.scope == self.scope, db.PaintingRow.status.in_(_statuses(UNFINISHED)))
            .order_by(db.PaintingRow.created_at, db.PaintingRow.id)
        )
        with self._read() as s:
            return self._records(s, list(s.scalars(query)))

    def finished_before(self, cutoff: datetime, *, limit: int = MAX_PAGE) -> list[str]:
        """Ids of paintings that ended (done, failed, cancelled) and last changed before `cutoff`."""
        p = db.PaintingRow
        query = (
            sa.select(p.id)
            .where(p.scope == self.scope, p.status.in_(_statuses(FINISHED)), p.updated_at < cutoff)
            .order_by(p.updated_at, p.id)
            .limit(limit)
        )
        with self._read() as s:
            return list(s.scalars(query))

    def progress(self, painting_id: str) -> list[ProgressPoint]:
        """The loss curve of a painting, by iteration; raises NotFound."""
        check_painting_id(painting_id)
        with self._read() as s:
            self._require(s, painting_id)
            rows = s.scalars(
                sa.select(db.ProgressRow)
                .where(db.ProgressRow.painting_id == painting_id)
                .order_by(db.ProgressRow.iteration)
            )
            return [
                ProgressPoint(
                    iteration=r.iteration,
                    evaluations=r.evaluations,
                    total_loss=r.total_loss,
                    content_loss=r.content_loss,
                    style_loss=r.style_loss,
                    tv_loss=r.tv_loss,
                    elapsed_s=r.elapsed_s,
                )
                for r in rows
            ]

    def last_iteration(self, painting_id: str) -> int:
        """The highest iteration the painting has reached: its loss curve's last point or its record's
        iteration, whichever is higher. A resumed run repeats iterations; this never goes back."""
        check_painting_id(painting_id)
        with self._read() as s:
            self._require(s, painting_id)
            top = s.scalar(
                sa.select(sa.func.max(db.ProgressRow.iteration)).where(db.ProgressRow.painting_id == painting_id)
            )
            own = s.scalar(sa.select(db.PaintingRow.iteration).where(db.PaintingRow.id == painting_id))
            return max(top or 0, own or 0)

    def _require(self, s: Session, painting_id: str) -> None:
        found = s.scalar(
            sa.select(db.PaintingRow.id).where(db.PaintingRow.id == painting_id, db.PaintingRow.scope == self.scope)
        )
        if found is None:
            raise NotFound("No painting with that id.")

    def _records(self, s: Session, rows: Sequence[db.PaintingRow]) -> list[PaintingRecord]:
        if not rows:
            return []
        styles: dict[str, list[StyleImage]] = {row.id: [] for row in rows}
        for style in s.scalars(
            sa.select(db.StyleRow)
            .where(db.StyleRow.painting_id.in_(list(styles)))
            .order_by(db.StyleRow.painting_id, db.StyleRow.position)
        ):
            styles[style.painting_id].append(StyleImage(style.image_id, style.weight))
        return [self._record(row, styles[row.id]) for row in rows]

    @staticmethod
    def _record(row: db.PaintingRow, styles: list[StyleImage]) -> PaintingRecord:
        try:
            params = Params.model_validate(row.params)
            status = Status(row.status)
        except (ValidationError, ValueError) as exc:
            raise CorruptRecord(f"Painting {row.id} has stored data that no longer validates: {exc}") from exc
        return PaintingRecord(
            id=row.id,
            scope=row.scope,
            created_at=row.created_at,
            updated_at=row.updated_at,
            status=status,
            params=params,
            content_image=row.content_image,
            styles=tuple(styles),
            preview_image=row.preview_image,
            preview_iteration=row.preview_iteration,
            result_image=row.result_image,
            iteration=row.iteration,
            iterations=row.iterations,
            error=row.error,
            remote_id=row.remote_id,
            remote_url=row.remote_url,
            remote_cursor=row.remote_cursor,
            attempts=row.attempts,
            idempotency_key=row.idempotency_key,
            owner=row.owner,
            weight_changes=_weight_changes(row),
        )

    # -- changing ------------------------------------------------------------------------------

    def _conditional_update(
        self, s: Session, painting_id: str, allowed_from: Iterable[Status] | None, values: dict[str, Any]
    ) -> bool:
        stmt = sa.update(db.PaintingRow).where(db.PaintingRow.id == painting_id, db.PaintingRow.scope == self.scope)
        if allowed_from is not None:
            stmt = stmt.where(db.PaintingRow.status.in_(_statuses(allowed_from)))
        statement = stmt.values(updated_at=_now(), **values).execution_options(synchronize_session=False)
        result = cast("CursorResult[Any]", s.execute(statement))  # an UPDATE's result has a rowcount
        if result.rowcount == 1:
            return True
        self._require(s, painting_id)  # NotFound, or else the status did not match
        return False

    def transition(
        self,
        painting_id: str,
        to: Status,
        *,
        from_: Iterable[Status] = UNFINISHED,
        bump_attempts: bool = False,
        cancel_remote: bool = False,
        **fields: Any,
    ) -> bool:
        """Move a painting to status `to`, only if its status is one of `from_`; set `fields` too.

        Returns whether it applied (False: the status was something else, nothing changed).
        Atomic: the check and the change are one UPDATE. `bump_attempts` adds 1 to `attempts`.
        `cancel_remote`: when it applied, the painting's remote job (if any) is added to
        `remote_actions` as "cancel" in the same transaction.
        Fields: preview_image, result_image, iteration, attempts, error, remote_id, remote_url,
        remote_cursor. Raises NotFound, TypeError for an unknown field, ValueError for a bad value.
        """
        check_painting_id(painting_id)
        values = {"status": Status(to).value, **_checked_fields(fields)}
        if bump_attempts:
            values["attempts"] = db.PaintingRow.attempts + 1
        with self._write() as s:
            applied = self._conditional_update(s, painting_id, list(from_), values)
            if applied and cancel_remote:
                p = db.PaintingRow
                remote = s.execute(sa.select(p.remote_id, p.remote_url).where(p.id == painting_id)).one()
                if remote.remote_id is not None:
                    self._add_remote_action(s, remote.remote_id, "cancel", remote.remote_url)
            return applied

    def move_off_remote(self, painting_id: str, remote_id: str, **fields: Any) -> bool:
        """Take an unfinished painting back from its remote job `remote_id` (its Studio is gone): it is
        queued again with no job, no Studio and no cursor, `attempts` + 1, and `fields` set (see
        `transition`), and that job is added to `remote_actions` as "forget" at its Studio, in the
        same transaction, so the Studio stops and deletes it whenever it returns. Only while the
        painting is still on that job; returns whether it applied. Raises NotFound."""
        check_painting_id(painting_id)
        values = {
            "status": Status.QUEUED.value,
            **_checked_fields({**fields, "remote_id": None, "remote_url": None, "remote_cursor": None}),
            "attempts": db.PaintingRow.attempts + 1,
        }
        p = db.PaintingRow
        with self._write() as s:
            found = s.execute(
                sa.select(p.remote_url).where(p.id == painting_id, p.scope == self.scope, p.remote_id == remote_id)
            ).first()
            if found is None or not self._conditional_update(s, painting_id, list(UNFINISHED), values):
                self._require(s, painting_id)
                return False
            self._add_remote_action(s, remote_id, "forget", found.remote_url)
            return True

    def update(self, painting_id: str, *, only_if: Iterable[Status] | None = None, **fields: Any) -> bool:
        """Set some fields (not the status) of a painting; see `transition` for the fields.

        With `only_if`, only when the painting's status is one of those. Returns whether it applied.
        """
        check_painting_id(painting_id)
        values = _checked_fields(fields)
        with self._write() as s:
            return self._conditional_update(s, painting_id, None if only_if is None else list(only_if), values)

    def record_progress(
        self,
        painting_id: str,
        point: ProgressPoint,
        *,
        preview_image: str | None = None,
        remote_cursor: str | None = None,
        only_if: Iterable[Status] = UNFINISHED,
    ) -> bool:
        """Add a point to the loss curve and move the painting's iteration (and preview) to it, and
        how far the other side's event stream was read (`remote_cursor`), when given.

        One transaction; applies only while the painting's status is one of `only_if` (by default
        not finished, so a late frame cannot touch a cancelled painting). A point for an iteration
        already recorded replaces it (a resumed run repeats iterations). Returns whether it applied.
        """
        check_painting_id(painting_id)
        _check_count(point.iteration)
        _check_count(point.evaluations)
        values: dict[str, Any] = {"iteration": point.iteration}
        if remote_cursor is not None:
            values.update(_checked_fields({"remote_cursor": remote_cursor}))
        if preview_image is not None:
            values["preview_image"] = check_image_id(preview_image)
            values["preview_iteration"] = point.iteration
        row = {
            "painting_id": painting_id,
            "iteration": point.iteration,
            "evaluations": point.evaluations,
            "total_loss": point.total_loss,
            "content_loss": point.content_loss,
            "style_loss": point.style_loss,
            "tv_loss": point.tv_loss,
            "elapsed_s": float(point.elapsed_s),
        }
        dialect = postgresql if self.backend == "postgresql" else sqlite
        upsert = dialect.insert(db.ProgressRow).values(row)
        upsert = upsert.on_conflict_do_update(
            index_elements=["painting_id", "iteration"],
            set_={k: upsert.excluded[k] for k in row if k not in ("painting_id", "iteration")},
        )
        with self._write() as s:
            if not self._conditional_update(s, painting_id, list(only_if), values):
                return False
            s.execute(upsert)
            return True

    def change_weights(
        self, painting_id: str, weights: Mapping[str, float], *, forward_remote: bool = False
    ) -> tuple[PaintingRecord, bool]:
        """Set some of a Gatys painting's loss weights in its params (what any later run, a resume
        too, paints with) and append the change, with all three weights after it and `iteration` None
        (not painted with yet), to its history: one transaction. Returns the painting as it now is,
        and whether anything changed (weights it already has change nothing and add no history).

        `forward_remote`: when it changed, the painting's remote job (if any) is added to
        `remote_actions` as "weights" in the same transaction, so the other side is told for sure.
        Raises NotFound, PaintingFinished (it ended: nothing changes) and ValueError (a weight out of
        Params' range, a painting by another engine, or MAX_WEIGHT_CHANGES changes already).
        """
        check_painting_id(painting_id)
        changes = parse_weights(dict(weights))
        now = _now()
        with self._write() as s:
            row = s.get(db.PaintingRow, painting_id, with_for_update=True)
            if row is None or row.scope != self.scope:
                raise NotFound("No painting with that id.")
            record = self._record(row, [])
            if record.finished:
                raise PaintingFinished(f"The painting has ended ({record.status.value}): its weights stay as they are.")
            if record.params.engine != "gatys":
                raise ValueError(f"weights: the {record.params.engine} engine paints in one pass, without loss weights")
            params = Params.model_validate({**row.params, **changes})
            if weights_of(params) == weights_of(record.params):
                return self._records(s, [row])[0], False
            if len(record.weight_changes) >= MAX_WEIGHT_CHANGES:
                raise ValueError(f"weights: a painting takes at most {MAX_WEIGHT_CHANGES} changes")
            change = WeightChange(iteration=None, weights=weights_of(params), at=now)
            row.params = params.model_dump(mode="json")
            row.weight_changes = [c.to_json() for c in (*record.weight_changes, change)]
            row.updated_at = now
            if forward_remote and row.remote_id is not None:
                self._add_remote_action(s, row.remote_id, "weights", row.remote_url)
            s.flush()
            return self._records(s, [row])[0], True

    def mark_weights_applied(self, painting_id: str, iteration: int, weights: Mapping[str, float]) -> bool:
        """The worker painted `iteration` with `weights` (a progress point that carries them): every
        change not yet painted with, up to the last one asking for these weights, took effect there
        (two changes between iterations take effect together). Whether any did. Raises NotFound."""
        check_painting_id(painting_id)
        _check_count(iteration)
        with self._write() as s:
            row = s.get(db.PaintingRow, painting_id, with_for_update=True)
            if row is None or row.scope != self.scope:
                raise NotFound("No painting with that id.")
            history = list(_weight_changes(row))
            pending = [i for i, change in enumerate(history) if change.iteration is None]
            matching = [i for i in pending if _same_weights(history[i].weights, weights)]
            if not matching:
                return False
            for i in pending:
                if i <= matching[-1]:
                    history[i] = WeightChange(iteration, history[i].weights, history[i].at)
            row.weight_changes = [c.to_json() for c in history]
            return True

    def delete(self, painting_id: str, *, forget_remote: bool = False) -> bool:
        """Remove a painting and its history; return whether there was one.

        With `forget_remote`, its remote job (if it has one) is added to `remote_actions` as
        "forget" in the same transaction, so the intent to stop it and have the other side delete
        it survives whatever happens next. Its images stay in the store until `painting.fsck.gc`
        (or `collect`) finds nothing refers to them.
        """
        check_painting_id(painting_id)
        p = db.PaintingRow
        with self._write() as s:
            found = s.execute(
                sa.select(p.remote_id, p.remote_url).where(p.id == painting_id, p.scope == self.scope)
            ).first()
            if found is None:
                return False
            if forget_remote and found.remote_id is not None:
                self._add_remote_action(s, found.remote_id, "forget", found.remote_url)
            # The foreign keys cascade too; deleting explicitly does not depend on SQLite's pragma.
            s.execute(sa.delete(db.ProgressRow).where(db.ProgressRow.painting_id == painting_id))
            s.execute(sa.delete(db.StyleRow).where(db.StyleRow.painting_id == painting_id))
            s.execute(sa.delete(db.PaintingRow).where(db.PaintingRow.id == painting_id))
            return True

    # -- what the other side must still do ----------------------------------------------------

    def add_remote_action(
        self, remote_id: str, action: RemoteAction, remote_url: str | None = None, *, target: RemoteTarget = "job"
    ) -> None:
        """Remember that the other side (at `remote_url`, when there are several) must `cancel` or
        `forget` its job `remote_id`, or take its painting's latest loss `weights` (idempotent; a
        forget replaces a cancel or weights, a cancel replaces weights, never the other way round;
        weights again mark the intent as asked anew). `target`: a painting's job, or a training run."""
        _checked_fields({"remote_id": remote_id, "remote_url": remote_url})
        with self._write() as s:
            self._add_remote_action(s, remote_id, action, remote_url, target)

    def _add_remote_action(
        self, s: Session, remote_id: str, action: RemoteAction, remote_url: str | None, target: RemoteTarget = "job"
    ) -> None:
        if action not in REMOTE_ACTIONS:
            raise ValueError(f"a remote action is one of {REMOTE_ACTIONS}, not {action!r}")
        if target not in ("job", "training") or (target == "training" and action == "weights"):
            raise ValueError(f"a {target} takes no {action!r}")
        dialect = postgresql if self.backend == "postgresql" else sqlite
        row = {
            "scope": self.scope,
            "remote_id": remote_id,
            "action": action,
            "created_at": _now(),
            "remote_url": remote_url,
            "target": None if target == "job" else target,
        }
        insert = dialect.insert(db.RemoteActionRow).values(row)
        keys = ["scope", "remote_id"]
        r = db.RemoteActionRow
        if action == "forget":
            s.execute(insert.on_conflict_do_update(index_elements=keys, set_={"action": action}))
        else:  # a cancel replaces weights; weights are asked anew (`remote_action`), unless a cancel or forget is due
            set_ = {"action": action} if action == "cancel" else {"created_at": row["created_at"]}
            s.execute(insert.on_conflict_do_update(index_elements=keys, set_=set_, where=r.action == "weights"))

    def remote_actions(self, target: RemoteTarget = "job") -> list[tuple[str, RemoteAction]]:
        """(remote id, action) still to confirm for a painting's job (or a training run), oldest first."""
        r = db.RemoteActionRow
        which = r.target.is_(None) if target == "job" else r.target == target
        query = sa.select(r.remote_id, r.action).where(r.scope == self.scope, which).order_by(r.created_at, r.remote_id)
        with self._read() as s:
            return [(remote_id, cast(RemoteAction, action)) for remote_id, action in s.execute(query)]

    def remote_action(self, remote_id: str) -> DueAction | None:
        """What the other side must still do to job `remote_id`, when it was (last) asked, and where;
        None: nothing."""
        r = db.RemoteActionRow
        query = sa.select(r.action, r.created_at, r.remote_url, r.target).where(
            r.scope == self.scope, r.remote_id == remote_id
        )
        with self._read() as s:
            found = s.execute(query).first()
        if found is None:
            return None
        target: RemoteTarget = "training" if found.target == "training" else "job"
        return DueAction(cast(RemoteAction, found.action), found.created_at, found.remote_url, target)

    def remove_remote_action(self, remote_id: str, action: RemoteAction, *, asked_by: datetime | None = None) -> None:
        """The other side confirmed `action` (or no longer knows the job): forget the intent, unless a
        later one (a forget after a cancel) replaced it meanwhile, or, with `asked_by` (the time
        `remote_action` gave), it was asked anew since (new weights while the last were on their way)."""
        r = db.RemoteActionRow
        stmt = sa.delete(r).where(r.scope == self.scope, r.remote_id == remote_id, r.action == action)
        if asked_by is not None:
            stmt = stmt.where(r.created_at <= asked_by)
        with self._write() as s:
            s.execute(stmt)

    # -- who drives a painting (several Gallery processes on one database) -----------------------

    def claim(self, painting_id: str, holder: str, lease_s: float) -> bool:
        """Take (or keep) the lease on driving an unfinished painting for `lease_s` seconds: only when
        nobody holds it, its lease ran out, or `holder` holds it already. One conditional UPDATE, so
        of two processes claiming at once one wins. Whether `holder` holds it now."""
        check_painting_id(painting_id)
        now = _now()
        p = db.PaintingRow
        stmt = (
            sa.update(p)
            .where(
                p.id == painting_id,
                p.scope == self.scope,
                p.status.in_(_statuses(UNFINISHED)),
                sa.or_(p.holder.is_(None), p.holder == holder, p.held_until < now),
            )
            .values(holder=_checked_holder(holder), held_until=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False)
        )
        with self._write() as s:
            return cast("CursorResult[Any]", s.execute(stmt)).rowcount == 1

    def renew(self, holder: str, lease_s: float) -> set[str]:
        """Extend every lease `holder` still has on an unfinished painting by `lease_s` from now; the
        ids of those paintings (one that another process took after the lease ran out is not among them)."""
        now = _now()
        p = db.PaintingRow
        mine = sa.and_(p.scope == self.scope, p.holder == holder, p.status.in_(_statuses(UNFINISHED)))
        with self._write() as s:
            s.execute(
                sa.update(p)
                .where(mine)
                .values(held_until=now + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False)
            )
            return set(s.scalars(sa.select(p.id).where(mine)))

    def release(self, holder: str, painting_ids: Iterable[str] | None = None) -> None:
        """Give up `holder`'s leases (on these paintings, or all), so that another process may take
        them at once (a process stopping cleanly)."""
        p = db.PaintingRow
        stmt = sa.update(p).where(p.scope == self.scope, p.holder == holder)
        if painting_ids is not None:
            stmt = stmt.where(p.id.in_(list(painting_ids)))
        with self._write() as s:
            s.execute(stmt.values(holder=None, held_until=None).execution_options(synchronize_session=False))

    def claimable(self, holder: str, *, limit: int = MAX_PAGE) -> list[str]:
        """Unfinished paintings nobody drives (no lease, a lease run out, or `holder`'s own), oldest first."""
        now = _now()
        p = db.PaintingRow
        query = (
            sa.select(p.id)
            .where(
                p.scope == self.scope,
                p.status.in_(_statuses(UNFINISHED)),
                sa.or_(p.holder.is_(None), p.holder == holder, p.held_until < now),
            )
            .order_by(p.created_at, p.id)
            .limit(limit)
        )
        with self._read() as s:
            return list(s.scalars(query))

    # -- images, across every scope ------------------------------------------------------------

    def image_references(self) -> Iterator[ImageReference]:
        """Every use of an image by any record in this database (all scopes), by painting (and by
        training run: its sample, role "sample")."""
        p, st, t = db.PaintingRow, db.StyleRow, db.TrainingRow

        def role_column(name: str) -> Any:
            return sa.literal(name, sa.String(16)).label("role")

        query = sa.union_all(
            sa.select(p.id.label("painting_id"), role_column("content"), p.content_image.label("image_id")).where(
                p.content_image.is_not(None)
            ),
            sa.select(p.id, role_column("style"), st.image_id).join(st, st.painting_id == p.id),
            sa.select(p.id, role_column("preview"), p.preview_image).where(p.preview_image.is_not(None)),
            sa.select(p.id, role_column("result"), p.result_image).where(p.result_image.is_not(None)),
            sa.select(t.id, role_column("sample"), t.sample_image).where(t.sample_image.is_not(None)),
        ).order_by("painting_id", "role", "image_id")
        with self._read() as s:
            rows = s.execute(query).all()
        for painting_id, role, image_id in rows:
            yield ImageReference(painting_id=painting_id, role=role, image_id=image_id)

    def invalid_records(self) -> list[tuple[str, str]]:
        """(painting id, reason) for every record, any scope, whose stored data no longer validates."""
        found = []
        with self._read() as s:
            for row in s.scalars(sa.select(db.PaintingRow).order_by(db.PaintingRow.id)):
                try:
                    self._record(row, [])
                except CorruptRecord as exc:
                    found.append((row.id, str(exc)))
        return found

    def owner_has_image(self, owner: str, image_id: str) -> bool:
        """Whether one of `owner`'s paintings in this scope refers to the image (in any role)."""
        p, st = db.PaintingRow, db.StyleRow
        mine = sa.and_(p.scope == self.scope, p.owner == owner)
        roles = sa.or_(p.content_image == image_id, p.preview_image == image_id, p.result_image == image_id)
        styled = sa.select(st.painting_id).where(st.image_id == image_id)
        query = sa.select(p.id).where(mine, sa.or_(roles, p.id.in_(styled))).limit(1)
        with self._read() as s:
            return s.scalar(query) is not None

    def referenced_images(self) -> set[str]:
        """The ids of every image some record (any scope) refers to."""
        return {ref.image_id for ref in self.image_references()}


__all__ = [
    "CATALOG_FILENAME",
    "MAX_PAGE",
    "MAX_WEIGHT_CHANGES",
    "REMOTE_ACTIONS",
    "Catalog",
    "DueAction",
    "RemoteAction",
    "RemoteTarget",
]
