"""Manager overhead per job: 200 short simulated renders back to back.

    python bench/render_overhead.py [--db sqlite|postgres] [--engine nexrender|aerender]

Overhead = (wall time from the first claim to the last completion
- the summed wall time of the render processes themselves) / jobs.
Target: < 250 ms per job.
"""

import time

from harness import Bench, parse_args, summary


def main():
    args = parse_args(__doc__, jobs=(int, 200, "how many jobs"),
                      engine=(str, "aerender", "render engine"))
    with Bench("overhead", args.db, RENDER_ENGINE=args.engine) as bench:
        from jobs.models import Job, Status

        for n in range(args.jobs):
            path = bench.project(f"o{n}.aep", frames=2)
            Job.objects.create(status=Status.QUEUED, engine=args.engine, project_path=str(path),
                               path_key=str(path).casefold(),
                               config={"template": {"composition": "main"}})
        started = time.monotonic()
        bench.start_worker()
        deadline = time.monotonic() + 30 * 60
        while Job.objects.exclude(status__in=[Status.COMPLETED, Status.FAILED]).exists():
            if time.monotonic() > deadline:
                raise SystemExit("timed out")
            time.sleep(0.2)
        rows = list(Job.objects.values_list("status", "started_at", "finished_at",
                                            "render_seconds"))
        failed = sum(1 for r in rows if r[0] != Status.COMPLETED)
        first_claim = min(r[1] for r in rows)
        last_done = max(r[2] for r in rows)
        wall = (last_done - first_claim).total_seconds()
        render_total = sum(r[3] or 0 for r in rows)
        per_job = (wall - render_total) / len(rows)
        print(f"{len(rows)} renders ({args.engine} engine, {args.db}), {failed} failed; "
              f"worker start-up to first claim excluded "
              f"(whole run {time.monotonic() - started:.1f} s)")
        print(f"wall {wall:.2f} s, render processes {render_total:.2f} s")
        print(summary("render process", [r[3] or 0 for r in rows]))
        print(f"overhead per job: {per_job * 1000:.1f} ms "
              f"(target < 250 ms: {'met' if per_job < 0.25 else 'MISSED'})")


if __name__ == "__main__":
    main()
