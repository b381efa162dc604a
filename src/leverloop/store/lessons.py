"""Lessons and their events: the auditable lifecycle of every (pattern, category, scope) cell."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from leverloop.domain.lessons import DisabledBy, Lesson, LessonEvent, LessonStatus

_COLUMNS = (
    "lesson_id, module, pattern_key, action_category, scope, status, strength, decay_halflife_hours, reason, "
    "disabled_by, first_seen_at, status_since, last_evidence_at"
)


def load(conn: sa.Connection) -> dict[str, Lesson]:
    out = {}
    for r in conn.execute(sa.text(f"select {_COLUMNS} from leverloop.lessons")).mappings():
        row = dict(r)
        row["status"] = LessonStatus(row["status"])
        row["disabled_by"] = DisabledBy(row["disabled_by"]) if row["disabled_by"] else None
        out[row["lesson_id"]] = Lesson(**row)
    return out


def save(
    conn: sa.Connection,
    run_id: str,
    as_of,
    lessons: Mapping[str, Lesson],
    events: Iterable[LessonEvent],
) -> None:
    """Upsert every lesson (its status and the reason for it) and append the transitions."""
    rows = [
        {
            "lesson_id": lesson.lesson_id,
            "module": lesson.module,
            "pattern_key": lesson.pattern_key,
            "action_category": lesson.action_category,
            "scope": json.dumps(lesson.scope),
            "status": lesson.status.value,
            "strength": lesson.strength,
            "halflife": lesson.decay_halflife_hours,
            "reason": lesson.reason,
            "disabled_by": lesson.disabled_by.value if lesson.disabled_by else None,
            "first_seen_at": lesson.first_seen_at,
            "status_since": lesson.status_since,
            "last_evidence_at": lesson.last_evidence_at,
            "run": run_id,
        }
        for lesson in lessons.values()
    ]
    if rows:
        conn.execute(
            sa.text(
                """
                insert into leverloop.lessons (lesson_id, module, pattern_key, action_category, scope, status,
                    strength, decay_halflife_hours, reason, disabled_by, first_seen_at, status_since,
                    last_evidence_at, updated_run_id)
                values (:lesson_id, :module, :pattern_key, :action_category, cast(:scope as jsonb), :status,
                    :strength, :halflife, :reason, :disabled_by, :first_seen_at, :status_since, :last_evidence_at, :run)
                on conflict (lesson_id) do update set
                    status = excluded.status, strength = excluded.strength,
                    decay_halflife_hours = excluded.decay_halflife_hours, reason = excluded.reason,
                    disabled_by = excluded.disabled_by, status_since = excluded.status_since,
                    last_evidence_at = excluded.last_evidence_at, updated_run_id = excluded.updated_run_id
                """
            ),
            rows,
        )
    event_rows = [
        {
            "lesson_id": e.lesson_id,
            "run": run_id,
            "as_of": as_of,
            "from": e.from_status.value if e.from_status else None,
            "to": e.to_status.value,
            "reason": e.reason,
            "evidence": json.dumps(e.evidence, default=str),
        }
        for e in events
    ]
    if event_rows:
        conn.execute(
            sa.text(
                """
                insert into leverloop.lesson_events (lesson_id, run_id, as_of, from_status, to_status, reason, evidence)
                values (:lesson_id, :run, :as_of, :from, :to, :reason, cast(:evidence as jsonb))
                """
            ),
            event_rows,
        )
