"""Nothing in the render loop grows with the length of a render or its log.

    python bench/render_loop.py [--db sqlite|postgres] [--engine aerender|nexrender]
                                [--seconds 60] [--mb-per-second 10]

One long render that floods its output the whole time (the stand-in aerender
prints ``--mb-per-second`` of log lines between its frame lines, for
``--seconds``). The worker process is sampled every second: its CPU time
(the render loop, its output reader, its log and progress writes) per frame
rendered, its resident memory, and the database's per-job rows. The first
and the last third of the render are compared: a loop whose cost grows with
the log (re-sending it, scanning it, keeping it) shows a higher CPU per
frame, or more memory, at the end.

Target: the last third costs no more than 1.25 times the first, in CPU per
frame and in memory; the progress events of the job stay bounded.
"""

import statistics
import time

import psutil
from harness import Bench, parse_args


def main():
    args = parse_args(__doc__, engine=(str, "aerender", "render engine"),
                      seconds=(float, 60.0, "how long the render floods"),
                      mb_per_second=(float, 10.0, "megabytes of log lines per second"))
    fps = 10
    frames = int(args.seconds * fps)
    with Bench("loop", args.db, RENDER_ENGINE=args.engine) as bench:
        from jobs.models import Job, JobEvent, JobLog, Status

        worker = bench.start_worker()
        bench.wait_worker_ready()
        proc = psutil.Process(worker.pid)
        path = bench.project("long.aep", frames=frames, frame_seconds=1 / fps,
                             flood_mb=args.mb_per_second * args.seconds)
        job = Job.objects.create(status=Status.QUEUED, engine=args.engine,
                                 project_path=str(path), path_key=str(path).casefold(),
                                 config={"template": {"composition": "main"}})
        samples = []  # (monotonic, cpu seconds, rss, frames done, progress events)
        events_peak = 0
        while True:
            cpu = proc.cpu_times()
            row = Job.objects.filter(pk=job.pk).values("status", "frames_done").get()
            events = JobEvent.objects.filter(job_id=job.pk, kind="progress").count()
            events_peak = max(events_peak, events)
            if row["status"] == Status.RENDERING and row["frames_done"]:
                samples.append((time.monotonic(), cpu.user + cpu.system,
                                proc.memory_info().rss, row["frames_done"], events))
            if row["status"] in (Status.COMPLETED, Status.FAILED):
                break
            time.sleep(1.0)
        job.refresh_from_db()
        log = JobLog.objects.get(job=job)
        if len(samples) < 6:
            raise SystemExit(f"too few samples ({len(samples)}); job {job.status} {job.error}")
        third = len(samples) // 3
        first, last = samples[:third + 1], samples[-third - 1:]
        middle = samples[third:2 * third + 1]

        def cpu_per_frame(window):
            frames_done = window[-1][3] - window[0][3]
            return (window[-1][1] - window[0][1]) / max(1, frames_done)

        cpu_first, cpu_last = cpu_per_frame(first), cpu_per_frame(last)
        cpu_middle = cpu_per_frame(middle)
        rss_first = statistics.median(s[2] for s in first) / 2**20
        rss_middle = statistics.median(s[2] for s in middle) / 2**20
        rss_last = statistics.median(s[2] for s in last) / 2**20
        flood = args.mb_per_second / fps
        print(f"one render of {frames} frames over ~{args.seconds:g} s flooding "
              f"{args.mb_per_second:g} MB/s of log ({args.engine} engine, {args.db}): "
              f"job {job.status}, {(log.omitted_bytes + len(log.head) + len(log.tail)) / 1e6:.0f}"
              f" MB of output read, {len(log.head.encode()) + len(log.tail.encode())} bytes "
              f"stored")
        print(f"  worker CPU per frame (~{flood:.1f} MB of output): first third "
              f"{cpu_first * 1000:.1f} ms, middle {cpu_middle * 1000:.1f} ms, last third "
              f"{cpu_last * 1000:.1f} ms (x{cpu_last / cpu_first:.2f})")
        print(f"  worker RSS (medians): first third {rss_first:.1f} MB, middle "
              f"{rss_middle:.1f} MB, last third {rss_last:.1f} MB (x{rss_last / rss_first:.2f})")
        print(f"  progress events of the job (the live outbox): at most {events_peak} at once")
        flat = cpu_last <= 1.25 * cpu_first and rss_last <= 1.25 * rss_first
        print(f"target: flat (last third <= 1.25 x the first): {'met' if flat else 'MISSED'}")


if __name__ == "__main__":
    main()
