"""Peak RSS of the worker while a render floods its output.

    python bench/worker_rss.py [--mb 200]      # target < 150 MB

The simulator prints ``--mb`` megabytes of log lines; the worker must read
them all while keeping only a capped head and tail.
"""

import time

import psutil
from harness import Bench, parse_args


def main():
    args = parse_args(__doc__, mb=(int, 200, "megabytes of output"),
                      engine=(str, "nexrender", "render engine"))
    with Bench("rss", args.db, RENDER_ENGINE=args.engine) as bench:
        from jobs.models import Job, JobLog, Status

        worker = bench.start_worker()
        bench.wait_worker_ready()
        proc = psutil.Process(worker.pid)
        idle_rss = proc.memory_info().rss
        path = bench.project("flood.aep", frames=20, frame_seconds=0, flood_mb=args.mb)
        job = Job.objects.create(status=Status.QUEUED, engine=args.engine,
                                 project_path=str(path), path_key=str(path).casefold(),
                                 config={"template": {"composition": "main"}})
        peak = idle_rss
        started = time.monotonic()
        while True:
            peak = max(peak, proc.memory_info().rss)
            job.refresh_from_db()
            if job.status in (Status.COMPLETED, Status.FAILED):
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        log = JobLog.objects.get(job=job)
        stored = len(log.head.encode()) + len(log.tail.encode())
        print(f"{args.mb} MB of render output through the {args.engine} engine: "
              f"job {job.status} in {elapsed:.1f} s")
        print(f"log stored: {stored / 1e6:.2f} MB kept, {log.omitted_bytes / 1e6:.1f} MB omitted")
        print(f"worker RSS idle {idle_rss / 2**20:.1f} MB, peak {peak / 2**20:.1f} MB "
              f"(target < 150 MB: {'met' if peak < 150 * 2**20 else 'MISSED'})")


if __name__ == "__main__":
    main()
