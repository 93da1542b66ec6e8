"""Dispatch latency: an idle node, a job becoming QUEUED -> its render process started.

    python bench/dispatch_latency.py --db postgres   # target p50 < 100 ms
    python bench/dispatch_latency.py --db sqlite     # target p50 < 1.5 s
"""

import time

from harness import Bench, parse_args, summary


def main():
    args = parse_args(__doc__, jobs=(int, 50, "how many jobs"),
                      engine=(str, "aerender", "engine whose process start is timed"))
    with Bench("dispatch", args.db, RENDER_ENGINE=args.engine) as bench:
        from jobs import lifecycle
        from jobs.models import Job, Status

        bench.start_worker(WORKER_POLL_SECONDS=0.5)
        bench.wait_worker_ready()
        latencies = []
        for n in range(args.jobs):
            path = bench.project(f"d{n}.aep")
            job = Job.objects.create(status=Status.VALIDATING, engine=args.engine,
                                     project_path=str(path), path_key=str(path).casefold(),
                                     config={"template": {"composition": "main"}})
            # Let the worker settle into its idle wait at a random phase.
            time.sleep(0.05 + (n % 7) * 0.07)
            lifecycle.mark_validated(job.pk)
            queued_at = Job.objects.values_list("queued_at", flat=True).get(pk=job.pk)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                job.refresh_from_db()
                if job.status in (Status.COMPLETED, Status.FAILED):
                    break
                time.sleep(0.02)
            if job.render_spawned_at is None:
                raise SystemExit(f"job {n} never started a render: {job.status} {job.error}")
            latencies.append((job.render_spawned_at - queued_at).total_seconds())
        target = 0.1 if args.db == "postgres" else 1.5
        print(f"dispatch latency on {args.db} ({args.engine} engine), "
              f"queued -> render process started")
        print(summary("latency", latencies))
        p50 = sorted(latencies)[len(latencies) // 2]
        print(f"target p50 < {target * 1000:.0f} ms: {'met' if p50 < target else 'MISSED'}")


if __name__ == "__main__":
    main()
