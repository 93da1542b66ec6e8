"""Render-time estimates against a synthetic farm's history: how wrong are they?

    python bench/estimates.py                 # target: both medians under 15 %
    python bench/estimates.py --jobs 6000 --nodes 8 --seed 3

A discrete-event simulation of a studio farm: projects with their own
compositions (frame counts, seconds per frame, frame sizes; composition names
shared across projects), renders with noise, now and then an outlier render
(a disk stall) and a failed attempt that is retried, and one render node that
runs slower than the others. Renders follow the estimator's own model (setup,
seconds per frame × frames, publishing) with lognormal noise: real farms
are messier, so read the figures as the estimator's floor under that spread.
Jobs arrive at random and queue in claim order; nodes take them as they come
free.

Every job is estimated the moment it joins the queue, through the
estimator the server uses (jobs.estimates: the same history samples, the
same queue walk over the nodes' live progress); the history grows as renders
complete, as RenderStat does. When the job has finished, its estimate is
compared with what happened: the median absolute percentage error of ``render_seconds``
(against its real claim-to-publish time) and of ``finishes_at`` (against the
real wait from joining the queue to done), for jobs with at least 3 earlier
renders of their composition. For scale, the same figures for a peer that
knows only the farm's mean seconds per frame (what a render manager without
per-composition history can say), and the time one forecast takes.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from harness import parse_args, percentile

from jobs import estimates

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NAMES = ["Main", "Final", "Social_9x16", "Teaser", "Lower third", "Bumper", "Master",
         "Cutdown 15s"]
SIZES = [(1920, 1080), (1080, 1920), (3840, 2160), (1280, 720)]
OUTLIER_SHARE = 0.03  # renders held up (disk stall, a heavy frame cache miss)
FAILURE_SHARE = 0.03  # attempts that crash part way and are retried
PREFLIGHT_SHARE = 0.85  # jobs whose frame count is read before the render
RANGE_SHARE = 0.15  # jobs that render a frame range of their composition
HIGH_PRIORITY_SHARE = 0.1
PROGRESS_EVERY = 1.0  # seconds between progress reports of a render
DEFAULT_SPF = 1.0


@dataclass
class Composition:
    project: int
    name: str
    size: tuple[int, int]
    frames: int
    spf: float  # seconds per frame on a normal node
    setup: float
    publish: float

    @property
    def project_key(self) -> str:
        return f"project:{self.project}:{self.name}"

    @property
    def comp_key(self) -> str:
        return f"comp:{self.name}:{self.size[0]}x{self.size[1]}"


@dataclass
class Job:
    id: int
    comp: Composition
    frames: int
    frames_known: bool
    priority: int
    arrived: float
    started: float | None = None
    node: str = ""
    finished: float | None = None
    # this attempt's truth: seconds before the first frame, per frame, after the last
    setup: float = 0.0
    spf: float = 0.0
    publish: float = 0.0
    fails_at: float | None = None
    predicted: estimates.Estimate | None = None
    baseline: float | None = None
    history_at_arrival: int = 0


@dataclass
class Farm:
    rng: random.Random
    nodes: dict[str, float]  # name → pace (1: normal, >1: slower)
    stats: dict = field(default_factory=dict)
    all_spf: list = field(default_factory=list)  # every completed render, for the peer
    queue: list = field(default_factory=list)
    running: dict = field(default_factory=dict)  # node → Job
    events: list = field(default_factory=list)
    done: list = field(default_factory=list)
    walk_seconds: list = field(default_factory=list)
    longest_queue: int = 0
    noise: float = 0.1
    seq: int = 0

    def at(self, when: float, kind: str, payload) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, payload))


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0, sigma))


def make_compositions(rng: random.Random, projects: int) -> list[Composition]:
    comps = []
    for project in range(projects):
        # A project has a look: its compositions render at related speeds.
        base = lognormal(rng, 1.6, 0.9)
        for name in rng.sample(NAMES, rng.randint(1, 3)):
            comps.append(Composition(
                project=project, name=name, size=rng.choice(SIZES),
                frames=int(min(3000, max(24, lognormal(rng, 300, 0.7)))),
                spf=min(30.0, max(0.1, base * lognormal(rng, 1, 0.4))),
                setup=lognormal(rng, 12, 0.4), publish=lognormal(rng, 4, 0.5)))
    return comps


def row_of(job: Job, now: float, status: str) -> estimates.Row:
    comp = job.comp
    row = estimates.Row(id=job.id, status=status, order=(-job.priority, job.arrived, job.id),
                        project_key=comp.project_key, comp_key=comp.comp_key,
                        composition=comp.name, size=comp.size,
                        frames=job.frames if job.frames_known else None)
    if status == "RENDERING":
        row.node = job.node
        row.started_at = START + timedelta(seconds=job.started)
        # What the render node reports: frames done, and the time left at the
        # rate seen since the first frame, written once a second.
        reported = job.started + math.floor((now - job.started) / PROGRESS_EVERY) \
            * PROGRESS_EVERY
        rendering = reported - job.started - job.setup
        if rendering > 0:
            done = min(job.frames, int(rendering / job.spf))
            row.frames_done = done
            row.frames = job.frames  # aerender prints the frame count as it starts
            row.phase = "rendering" if done < job.frames else "publishing"
            if done >= 2:
                row.eta_seconds = (job.frames - done) * job.spf
            row.progress_at = START + timedelta(seconds=reported)
        else:
            row.phase = "setting up"
    return row


def forecast(farm: Farm, now: float) -> estimates.Forecast:
    queued = sorted(farm.queue, key=lambda job: (-job.priority, job.arrived, job.id))
    began = time.perf_counter()
    result = estimates.forecast(
        queued=[row_of(job, now, "QUEUED") for job in queued],
        rendering=[row_of(job, now, "RENDERING") for job in farm.running.values()],
        waiting=[], nodes=sorted(farm.nodes), stats=farm.stats,
        now=START + timedelta(seconds=now), default_spf=DEFAULT_SPF)
    farm.walk_seconds.append(time.perf_counter() - began)
    return result


def start_attempt(farm: Farm, node: str, job: Job, now: float) -> None:
    rng, pace = farm.rng, farm.nodes[node]
    job.started, job.node = now, node
    job.setup = lognormal(rng, job.comp.setup, 0.15)
    job.publish = lognormal(rng, job.comp.publish, 0.2)
    job.spf = lognormal(rng, job.comp.spf * pace, farm.noise)
    if rng.random() < OUTLIER_SHARE:
        job.spf *= rng.uniform(2, 4)
    total = job.setup + job.spf * job.frames + job.publish
    job.fails_at = now + total * rng.uniform(0.1, 0.9) if rng.random() < FAILURE_SHARE \
        else None
    farm.running[node] = job
    farm.at(job.fails_at if job.fails_at is not None else now + total, "end", node)


def claim(farm: Farm, node: str, now: float) -> None:
    if node in farm.running or not farm.queue:
        return
    job = min(farm.queue, key=lambda j: (-j.priority, j.arrived, j.id))
    farm.queue.remove(job)
    start_attempt(farm, node, job, now)


def end(farm: Farm, node: str, now: float) -> None:
    job = farm.running.pop(node)
    if job.fails_at is not None:  # a crash: nothing learned, back in the queue
        farm.queue.append(job)
        claim(farm, node, now)
        return
    job.finished = now
    row = row_of(job, now, "QUEUED")
    row.frames = job.frames
    render = job.spf * job.frames
    for key, sample in estimates.completed(row, node, farm.stats, render=render,
                                           total=now - job.started, frames=job.frames,
                                           after=job.publish):
        farm.stats[key] = [*farm.stats.get(key, [])[-(estimates.KEEP_SAMPLES - 1):], sample]
    farm.all_spf.append((now - job.started) / job.frames)
    farm.done.append(job)
    claim(farm, node, now)


def arrive(farm: Farm, job: Job, now: float) -> None:
    job.history_at_arrival = len(farm.stats.get(job.comp.project_key, []))
    farm.queue.append(job)
    farm.longest_queue = max(farm.longest_queue, len(farm.queue))
    job.predicted = forecast(farm, now).get(job.id)
    if farm.all_spf:
        job.baseline = statistics.fmean(farm.all_spf) * job.frames
    for node in sorted(farm.nodes):
        claim(farm, node, now)


def simulate(args) -> Farm:
    rng = random.Random(args.seed)
    nodes = {f"node-{n:02d}": 1.0 for n in range(1, args.nodes + 1)}
    nodes[f"node-{args.nodes:02d}"] = args.slow_pace  # the old machine in the corner
    farm = Farm(rng, nodes, noise=args.noise)
    comps = make_compositions(rng, args.projects)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(comps))]
    rng.shuffle(comps)
    mean_render = statistics.fmean(c.setup + c.spf * c.frames + c.publish for c in comps)
    gap = mean_render / (args.nodes * args.load)
    now = 0.0
    for n in range(args.jobs):
        now += rng.expovariate(1 / gap)
        comp = rng.choices(comps, weights)[0]
        frames = comp.frames
        if rng.random() < RANGE_SHARE:
            frames = rng.randint(max(1, frames // 10), frames)
        job = Job(id=n, comp=comp, frames=frames,
                  frames_known=rng.random() < PREFLIGHT_SHARE,
                  priority=10 if rng.random() < HIGH_PRIORITY_SHARE else 0, arrived=now)
        farm.at(now, "arrive", job)
    while farm.events:
        when, _, kind, payload = heapq.heappop(farm.events)
        if kind == "arrive":
            arrive(farm, payload, when)
        else:
            end(farm, payload, when)
    return farm


def ape(predicted: float, actual: float) -> float:
    return abs(predicted - actual) / actual * 100


def main():
    args = parse_args(__doc__, jobs=(int, 4000, "jobs to simulate"),
                      nodes=(int, 6, "render nodes"), projects=(int, 60, "projects"),
                      load=(float, 0.85, "share of the farm's capacity the jobs need"),
                      slow_pace=(float, 1.6, "how much slower the slow node renders"),
                      noise=(float, 0.1, "spread of a render's seconds per frame (lognormal "
                             "sigma)"),
                      seed=(int, 7, "random seed"))
    began = time.perf_counter()
    farm = simulate(args)
    judged = [job for job in farm.done if job.history_at_arrival >= 3]
    render_errors, finish_errors, peer_errors = [], [], []
    for job in judged:
        took = job.finished - job.started
        render_errors.append(ape(job.predicted.render_seconds, took))
        if job.predicted.finishes_at is not None:
            predicted_wait = (job.predicted.finishes_at - START).total_seconds() - job.arrived
            finish_errors.append(ape(predicted_wait, job.finished - job.arrived))
        if job.baseline is not None:
            peer_errors.append(ape(job.baseline, took))
    waits = [(job.finished - job.arrived) / 60 for job in judged]
    print(f"simulated {len(farm.done)} jobs on {args.nodes} nodes (one at ×{args.slow_pace:g}), "
          f"{args.projects} projects, load {args.load:.0%}, noise {args.noise:g}, "
          f"seed {args.seed}, in {time.perf_counter() - began:.1f} s")
    print(f"judged: {len(judged)} jobs with at least 3 earlier renders of their composition; "
          f"their wait from queue to done: median {statistics.median(waits):.1f} min, "
          f"p95 {percentile(waits, 95):.1f} min")
    print(f"render_seconds: median absolute error {statistics.median(render_errors):.1f} % "
          f"(p90 {percentile(render_errors, 90):.1f} %)  target < 15 %")
    print(f"finishes_at:    median absolute error {statistics.median(finish_errors):.1f} % "
          f"of the wait (p90 {percentile(finish_errors, 90):.1f} %)  target < 15 %")
    print(f"peer (farm-wide mean seconds per frame): render_seconds median absolute error "
          f"{statistics.median(peer_errors):.1f} %")
    walks = [s * 1000 for s in farm.walk_seconds]
    print(f"one forecast (the queue walk, queues up to {farm.longest_queue} jobs): "
          f"p50 {percentile(walks, 50):.2f} ms, p95 {percentile(walks, 95):.2f} ms")


if __name__ == "__main__":
    main()
