"""Manager overhead per job in a backlog: the time outside aerender itself.

    python bench/render_overhead.py [--db sqlite|postgres] [--engine nexrender|aerender]
                                    [--jobs 50] [--render-seconds 1] [--no-peer]

One render node, ``--jobs`` jobs queued before it starts, each a simulated
render of about ``--render-seconds``. The simulator writes when it started and
ended (AERENDER_SIM_TIMES), so only aerender's own time is taken out:

    overhead per job = (last completion - first completion
                        - aerender time of jobs 2..N) / (N - 1)

i.e. what a user waits for in a backlog beyond the renders themselves, from one
job reported done to the next (claim, start-up of the render process, reading
its end, publishing, the final write). The first job (the node's start-up) is
shown apart. nexrender's own server and worker run the same backlog with the
same simulator in the same run (bench/nexrender_peer.py; its jobs are taken in
random order, so completions are sorted).

Targets: no more than nexrender's worker with the nexrender engine; at most
50 ms with the aerender engine.
"""

import statistics
import time

from harness import Bench, parse_args
from nexrender_peer import NexrenderPeer, aerender_runs_by_key


def backlog_figures(completions: list[float], runs: list[dict]) -> dict:
    """``completions`` and ``runs`` (the simulator's start/end) in the same job order,
    sorted by completion."""
    pairs = sorted(zip(completions, runs, strict=True), key=lambda pair: pair[0])
    done = [c for c, _ in pairs]
    aerender = [r["end"] - r["start"] for _, r in pairs]
    n = len(done)
    gaps = [done[i] - done[i - 1] - aerender[i] for i in range(1, n)]
    return {
        "n": n,
        "per_job": (done[-1] - done[0] - sum(aerender[1:])) / (n - 1),
        "gaps": gaps,
        "aerender_mean": statistics.fmean(aerender),
        "wall": done[-1] - done[0],
    }


def show(label: str, figures: dict, first: float | None) -> None:
    gaps = sorted(figures["gaps"])
    p50 = gaps[len(gaps) // 2]
    p95 = gaps[min(len(gaps) - 1, int(len(gaps) * 0.95))]
    first_text = f"; first job {first * 1000:.0f} ms outside aerender" if first is not None \
        else ""
    print(f"  {label}: {figures['per_job'] * 1000:.1f} ms per job outside aerender "
          f"(per-job gaps p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
          f"max {gaps[-1] * 1000:.1f} ms; aerender {figures['aerender_mean']:.2f} s a job"
          f"{first_text})")
    if "parts" in figures:
        before, after, between = figures["parts"]
        print(f"    medians: claim -> aerender started {before * 1000:.1f} ms, aerender ended "
              f"-> COMPLETED {after * 1000:.1f} ms, COMPLETED -> next claim "
              f"{between * 1000:.1f} ms")


def ours(args, bench, times_file) -> tuple[dict, float]:
    from jobs.models import Job, Status

    jobs = []
    frames = max(1, round(args.render_seconds * 25))
    for n in range(args.jobs):
        path = bench.project(f"o{n}.aep", frames=frames, frame_seconds=args.render_seconds / frames)
        jobs.append(Job.objects.create(
            status=Status.QUEUED, engine=args.engine, project_path=str(path),
            path_key=str(path).casefold(), config={"template": {"composition": "main"}}))
    bench.start_worker(AERENDER_SIM_TIMES=times_file)
    deadline = time.monotonic() + 30 * 60
    while Job.objects.exclude(status__in=[Status.COMPLETED, Status.FAILED]).exists():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.2)
    rows = {row[0].hex: row[1:] for row in Job.objects.values_list(
        "pk", "status", "started_at", "finished_at", "error")}
    failed = [(key, row[3]) for key, row in rows.items() if row[0] != Status.COMPLETED]
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed, e.g. {failed[0]}")
    runs = aerender_runs_by_key(times_file, rows)
    keys = list(rows)
    figures = backlog_figures([rows[k][2].timestamp() for k in keys], [runs[k] for k in keys])
    # Where the time outside aerender goes, per job (medians): claim -> aerender
    # started, aerender ended -> COMPLETED, COMPLETED -> the next claim.
    order = sorted(keys, key=lambda k: rows[k][1])
    before = [runs[k]["start"] - rows[k][1].timestamp() for k in order]
    after = [rows[k][2].timestamp() - runs[k]["end"] for k in order]
    between = [rows[b][1].timestamp() - rows[a][2].timestamp()
               for a, b in zip(order, order[1:], strict=False)]
    figures["parts"] = (statistics.median(before), statistics.median(after),
                        statistics.median(between))
    first_key = min(keys, key=lambda k: rows[k][2])
    first_run = runs[first_key]
    first = (rows[first_key][2].timestamp() - rows[first_key][1].timestamp()
             - (first_run["end"] - first_run["start"]))
    return figures, first


def peer(args, bench, times_file) -> dict:
    import uuid

    frames = max(1, round(args.render_seconds * 25))
    with NexrenderPeer(bench.root / "peer", str(bench.aerender), times_file) as nx:
        uids = []
        for n in range(args.jobs):
            path = bench.project(f"p{n}.aep", frames=frames,
                                 frame_seconds=args.render_seconds / frames)
            uid = uuid.uuid4().hex
            nx.submit(uid, path)
            uids.append(uid)
        nx.start_worker()
        done = nx.wait_done(uids, timeout=30 * 60)
        failed = [uid for uid, job in done.items() if job["state"] != "finished"]
        if failed:
            raise SystemExit(f"{len(failed)} peer job(s) failed; see {nx.root / 'worker.log'}")
        runs = aerender_runs_by_key(times_file, uids)
        figures = backlog_figures([nx.finished_at(done[u]) for u in uids], [runs[u] for u in uids])
        figures["label"] = nx.label
        return figures


def main():
    args = parse_args(__doc__, jobs=(int, 50, "jobs in the backlog"),
                      engine=(str, "nexrender", "render engine: nexrender or aerender"),
                      render_seconds=(float, 1.0, "how long each simulated render takes"),
                      peer=(int, 1, "1: also run nexrender's server and worker; 0: not"))
    with Bench("overhead", args.db, RENDER_ENGINE=args.engine) as bench:
        ours_times = bench.root / "aerender-times-ours.jsonl"
        figures, first = ours(args, bench, ours_times)
        print(f"backlog of {args.jobs} renders of ~{args.render_seconds:g} s on one node "
              f"({args.db})")
        show(f"ours, {args.engine} engine", figures, first)
        if args.peer:
            for proc in bench.workers:
                proc.terminate()
                proc.wait(timeout=30)
            peer_figures = peer(args, bench, bench.root / "aerender-times-peer.jsonl")
            show(peer_figures["label"], peer_figures, None)
        target = 0.05 if args.engine == "aerender" else (
            peer_figures["per_job"] if args.peer else None)
        if target is not None:
            what = "50 ms" if args.engine == "aerender" else \
                f"nexrender's worker, {target * 1000:.1f} ms"
            verdict = "met" if figures["per_job"] <= target else "MISSED"
            print(f"target: at most {what} per job: {verdict}")


if __name__ == "__main__":
    main()
