"""The estimator's arithmetic on plain rows (jobs.estimates): no database."""

from datetime import UTC, datetime, timedelta

import pytest

from jobs import estimates
from jobs.estimates import Row, Sample

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def history(*spfs, overhead=5.0, frames=100, after=1.0):
    return [Sample(spf=s, overhead=overhead, frames=frames, after=after) for s in spfs]


def job(n=1, **fields):
    base = {"id": n, "status": "QUEUED", "order": (0, n), "project_key": f"project:{n}",
            "comp_key": "comp:main", "composition": "Main", "frames": 100}
    return Row(**{**base, **fields})


def at(seconds):
    return NOW + timedelta(seconds=seconds)


def test_the_most_specific_history_wins():
    stats = {"project:1": history(2.0, 2.0, 2.0), "comp:main": history(9.0),
             "node:a": history(30.0)}
    estimate = estimates.expected(job(), stats, "a", 1.0)
    assert estimate.level == "project"
    assert estimate.render_seconds == pytest.approx(5 + 2.0 * 100)
    assert estimate.basis == "median of 3 renders of this composition"


def test_each_level_falls_back_to_the_next():
    stats = {"comp:main": history(3.0, 3.0), "node:a": history(7.0)}
    by_composition = estimates.expected(job(size=(1920, 1080)), stats, "a", 1.0)
    assert by_composition.level == "composition"
    assert by_composition.basis == "median of 2 renders of “Main” (1920×1080) in other projects"
    by_node = estimates.expected(job(comp_key="comp:other"), stats, "a", 1.0)
    assert (by_node.level, by_node.seconds_per_frame) == ("node", 7.0)
    assert by_node.basis == "median of 1 recent render on a"
    default = estimates.expected(job(comp_key=""), stats, "b", 0.5)
    assert default.level == "default"
    assert default.render_seconds == pytest.approx(50)
    assert default.basis == "no history: default rate of 0.5 s per frame"
    assert not default.from_history


def test_the_median_ignores_an_outlier():
    stats = {"project:1": history(2.0, 2.1, 1.9, 40.0, 2.0)}
    assert estimates.expected(job(), stats, "", 1.0).seconds_per_frame == pytest.approx(2.0)


def test_frames_come_from_the_job_else_its_history_else_an_assumption():
    stats = {"project:1": history(1.0, frames=40)}
    assert estimates.expected(job(frames=10), stats, "", 1.0).frames == 10
    from_history = estimates.expected(job(frames=None), stats, "", 1.0)
    assert from_history.frames == 40
    assert "frames as in its earlier renders" in from_history.basis
    unknown = estimates.expected(job(frames=None, project_key="", comp_key=""), {}, "", 1.0)
    assert unknown.frames == estimates.ASSUMED_FRAMES
    assert "frame count unknown" in unknown.basis


def test_a_slow_node_scales_the_rate():
    node = [Sample(spf=3.0, overhead=5, frames=100, ratio=1.5) for _ in range(3)]
    stats = {"project:1": history(2.0), "node:slow": node}
    estimate = estimates.expected(job(), stats, "slow", 1.0)
    assert estimate.seconds_per_frame == pytest.approx(3.0)
    assert "slow's recent pace (×1.50)" in estimate.basis
    # Two renders are not enough to judge a node.
    stats["node:slow"] = node[:2]
    assert estimates.expected(job(), stats, "slow", 1.0).seconds_per_frame == 2.0


def test_a_rendering_job_converges_on_its_live_rate():
    stats = {"project:1": history(2.0, overhead=0, after=0)}
    started = at(-100)
    # Half done, really at 1 s per frame (the node reported 50 s left just now).
    half = job(status="RENDERING", node="a", started_at=started, frames_done=50,
               eta_seconds=50, progress_at=NOW, phase="rendering")
    estimate = estimates.running(half, stats, NOW, 1.0)
    # Left: 50 frames at half history (2 s) and half live (1 s).
    assert estimate.finishes_at == at(75)
    assert "blended with the live rate (50% rendered)" in estimate.basis
    nearly = job(status="RENDERING", node="a", started_at=started, frames_done=95,
                 eta_seconds=5, progress_at=NOW, phase="rendering")
    estimate = estimates.running(nearly, stats, NOW, 1.0)
    assert estimate.finishes_at == at(5 * (0.95 * 1 + 0.05 * 2))
    assert estimate.render_seconds == pytest.approx(100 + 5.25)


def test_a_default_rate_gives_way_to_the_live_rate_at_once():
    early = job(status="RENDERING", project_key="", comp_key="", node="a", started_at=at(-20),
                frames_done=5, eta_seconds=95, progress_at=at(-1), phase="rendering")
    estimate = estimates.running(early, {}, NOW, 30.0)
    assert estimate.finishes_at == at(94)


def test_a_render_past_its_estimate_is_due_now_not_in_the_past():
    stats = {"project:1": history(1.0, overhead=0)}
    late = job(status="RENDERING", node="a", started_at=at(-500), phase="setting up")
    estimate = estimates.running(late, stats, NOW, 1.0)
    assert estimate.finishes_at == NOW
    assert estimate.render_seconds == 500


def test_the_queue_is_walked_in_order_over_the_nodes_that_are_up():
    stats = {f"project:{n}": history(1.0, overhead=0) for n in range(1, 5)}
    rendering = job(9, status="RENDERING", project_key="project:1", node="a",
                    started_at=at(-40), phase="setting up")
    queued = [job(n, frames=60 * n) for n in (2, 3, 4)]
    forecast = estimates.forecast(queued=queued, rendering=[rendering], waiting=[],
                                  nodes=["a", "b"], stats=stats, now=NOW, default_spf=1.0)
    running = forecast.get(9)
    assert (running.starts_at, running.finishes_at) == (at(-40), at(60))
    second, third, fourth = (forecast.get(n) for n in (2, 3, 4))
    assert (second.position, second.node, second.starts_at, second.finishes_at) == \
        (1, "b", NOW, at(120))
    assert (third.position, third.node, third.starts_at, third.finishes_at) == \
        (2, "a", at(60), at(240))
    assert (fourth.node, fourth.starts_at) == ("b", at(120))


def test_no_node_up_means_no_times():
    forecast = estimates.forecast(queued=[job()], rendering=[], waiting=[], nodes=[],
                                  stats={}, now=NOW, default_spf=1.0)
    estimate = forecast.get(1)
    assert (estimate.starts_at, estimate.finishes_at, estimate.position) == (None, None, 1)
    assert estimate.render_seconds == 100
    assert estimate.basis.endswith("no render node is up")


def test_a_job_not_in_the_queue_yet_lands_where_claim_order_puts_it():
    stats = {"project:1": history(1.0, overhead=0), "project:2": history(1.0, overhead=0)}
    # priority 5 first, then priority 0; a waiting priority-5 job goes between them.
    queued = [job(1, order=(-5, 1)), job(2, order=(0, 2))]
    waiting = job(3, status="VALIDATING", order=(-5, 3), project_key="project:1")
    forecast = estimates.forecast(queued=queued, rendering=[], waiting=[waiting],
                                  nodes=["a"], stats=stats, now=NOW, default_spf=1.0)
    assert forecast.get(3).starts_at == at(100)
    assert forecast.get(3).position is None
    # The queue itself does not make room for it: it is not there yet.
    assert forecast.get(2).starts_at == at(100)
    newcomer = forecast.place(job(4, status="PENDING", order=(0, 99)), NOW)
    assert newcomer.starts_at == at(200)


def test_samples_keep_the_latest_and_survive_bad_rows():
    stored = []
    for n in range(25):
        stored = estimates.add_sample(stored, Sample(spf=n, overhead=1, frames=10))
    assert len(stored) == estimates.KEEP_SAMPLES
    assert stored[-1]["spf"] == 24 and stored[0]["spf"] == 5
    assert estimates.samples_of([*stored, {"spf": "x"}, None, {"spf": 1, "overhead": 0,
                                                              "frames": 0}]) == \
        estimates.samples_of(stored)
