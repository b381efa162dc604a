"""The lesson lifecycle: FDR-controlled activation with hysteresis, reasons, monitoring verdicts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import false_discovery_control

from leverloop.domain.lessons import (
    CellEvidence,
    DisabledBy,
    LessonPolicy,
    LessonStatus,
    bh_qvalues,
    classify,
    lesson_id,
)

T0 = datetime(2026, 2, 1, tzinfo=UTC)
POLICY = LessonPolicy()


def cell(
    pattern="pm.a", p=1e-6, n_eff=200.0, depth=0, t_parent=0.0, edge=0.2, scope=None
) -> CellEvidence:
    return CellEvidence(
        module="pm", pattern_key=pattern, action_category="entry", scope=scope or ({"regime": "dip"} if depth else {}),
        n=int(n_eff) if n_eff == n_eff else 0, n_eff=n_eff, edge=edge, confidence=0.9, p_value=p, t_vs_parent=t_parent, scope_depth=depth,
    )  # fmt: skip


def run(evidence, prior=None, *, verdicts=None, at=T0):
    return classify(
        evidence,
        prior or {},
        verdicts=verdicts or {},
        halflives={},
        as_of=at,
        default_halflife_hours=720.0,
        policy=POLICY,
    )


@given(st.lists(st.floats(0, 1), min_size=1, max_size=60))
def test_bh_matches_scipy(p):
    assert np.allclose(bh_qvalues(p), false_discovery_control(np.array(p), method="bh"))


def test_bh_treats_nan_as_no_evidence():
    assert bh_qvalues([float("nan"), 0.001]) == [1.0, 0.002]


def test_lesson_ids_are_stable_and_ignore_scope_key_order():
    a = lesson_id("pm", "pm.a", "entry", {"regime": "dip", "bucket": "micro"})
    assert a == lesson_id("pm", "pm.a", "entry", {"bucket": "micro", "regime": "dip"})
    assert a != lesson_id("pm", "pm.a", "add", {"regime": "dip", "bucket": "micro"})
    assert a.startswith("ls_")


def test_significant_supported_cells_activate_and_others_say_why():
    strong, weak, thin = cell("pm.strong"), cell("pm.weak", p=0.4), cell("pm.thin", n_eff=5)
    lessons, events, q = run([strong, weak, thin])
    assert lessons[strong.lesson_id].status is LessonStatus.ACTIVE
    assert lessons[weak.lesson_id].status is LessonStatus.CANDIDATE
    assert "not significant after FDR" in lessons[weak.lesson_id].reason
    assert "too little support" in lessons[thin.lesson_id].reason
    assert [e.to_status for e in events] == [LessonStatus.ACTIVE]  # new candidates make no event
    assert thin.lesson_id not in q  # unsupported cells are not part of the FDR family


def test_fdr_controls_across_many_cells():
    # 100 null cells: p-values spread uniformly; the five below 0.05 are "significant" alone
    noise = [cell(f"pm.noise{i}", p=(i + 0.5) / 100) for i in range(100)]
    lessons, _, _ = run(noise)
    assert all(lesson.status is LessonStatus.CANDIDATE for lesson in lessons.values())


def test_hysteresis_keeps_an_active_lesson_until_evidence_is_clearly_gone():
    c = cell()
    lessons, _, _ = run([c])
    middling = replace(c, p_value=0.1)  # q 0.1: too weak to activate, strong enough to stay
    lessons, _, _ = run([middling], lessons, at=T0 + timedelta(days=1))
    assert lessons[c.lesson_id].status is LessonStatus.ACTIVE
    gone = replace(c, p_value=0.5)
    lessons, events, _ = run([gone], lessons, at=T0 + timedelta(days=2))
    assert lessons[c.lesson_id].status is LessonStatus.DECAYING
    assert events[-1].from_status is LessonStatus.ACTIVE and "q 0.5" in events[-1].reason
    lessons, _, _ = run([c], lessons, at=T0 + timedelta(days=3))
    assert lessons[c.lesson_id].status is LessonStatus.ACTIVE


def test_children_must_differ_from_their_parents():
    same = cell(depth=1, t_parent=0.5)
    different = cell("pm.b", depth=1, t_parent=3.0)
    lessons, _, _ = run([same, different])
    assert lessons[same.lesson_id].status is LessonStatus.CANDIDATE
    assert "parent scope" in lessons[same.lesson_id].reason
    assert lessons[different.lesson_id].status is LessonStatus.ACTIVE


def test_missing_evidence_starts_the_decay():
    c = cell()
    lessons, _, _ = run([c])
    lessons, events, _ = run([], lessons, at=T0 + timedelta(days=1))
    assert lessons[c.lesson_id].status is LessonStatus.DECAYING
    assert events[0].reason == "no evidence in the window"


def test_monitoring_disables_for_good_and_can_speed_up_decay():
    c, d = cell(), cell("pm.other")
    lessons, _, _ = run([c, d])
    verdicts = {
        c.lesson_id: ("disable", "applied R/R 0.3 below holdout"),
        d.lesson_id: ("decay_faster", "no gain"),
    }
    lessons, _, _ = run([c, d], lessons, verdicts=verdicts, at=T0 + timedelta(days=1))
    assert lessons[c.lesson_id].status is LessonStatus.DISABLED
    assert lessons[c.lesson_id].disabled_by is DisabledBy.MONITOR
    assert "below holdout" in lessons[c.lesson_id].reason
    assert lessons[d.lesson_id].decay_halflife_hours == 360.0
    # still significant later, but a monitor-disabled lesson does not come back on its own
    lessons, _, _ = run([c], lessons, at=T0 + timedelta(days=2))
    assert lessons[c.lesson_id].status is LessonStatus.DISABLED


def test_nan_evidence_never_activates():
    lessons, _, _ = run([cell(edge=float("nan")), cell("pm.b", n_eff=float("nan"))])
    assert all(lesson.status is LessonStatus.CANDIDATE for lesson in lessons.values())


def test_fdr_is_stratified_by_depth_so_sub_scope_noise_does_not_drown_root_edges():
    root = cell("pm.root", p=0.004)  # one of a few root tests: clearly significant there
    others = [cell(f"pm.r{i}", p=0.5) for i in range(9)]
    children = [
        cell("pm.root", p=0.3, depth=2, t_parent=0.0, scope={"regime": f"r{i}", "bucket": "b"})
        for i in range(400)
    ]
    lessons, _, q = run([root, *others, *children])
    assert lessons[root.lesson_id].status is LessonStatus.ACTIVE
    assert q[root.lesson_id] <= 0.05
    pooled = bh_qvalues([c.p_value for c in [root, *others, *children]])[0]
    assert pooled > 0.05  # one pooled family would have missed it
