"""The ffmpeg engine's overhead: a timeline rendered by a real worker against the
same ffmpeg command run by hand, on the same input.

    python bench/ffmpeg_overhead.py [--db sqlite|postgres] [--rounds 3] [--seconds 20]

Each round renders the timeline once through the worker (queue, claim, probing
the sources, ffmpeg under the guard with progress and watchdogs, poster frame,
publishing) and once by hand (the argv the engine builds, run directly). Two
figures per round:

- process: the worker's ffmpeg wall time (job.render_seconds) vs. by hand;
- job: claim to COMPLETED (everything the worker does for the job) vs. by hand.

Rounds alternate which side goes first. Target: overhead <= 5 % (medians, and
the best of each side). Wall times on a shared machine are noisy, so the
worker's own CPU use during the renders is printed too.
"""

import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
from harness import Bench, parse_args


def make_media(folder: Path, seconds: float, ffmpeg: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args, name):
        subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", *args,
                        str(folder / name)], check=True)
        return str(folder / name)

    return {
        "still": run("-f", "lavfi", "-i", "testsrc2=s=1920x1080", "-frames:v", "1",
                     name="pattern.png"),
        "clip": run("-f", "lavfi", "-i", "smptehdbars=s=1280x720:r=30:d=5", "-c:v",
                    "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", name="bars.mp4"),
        "tone": run("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    name="tone.wav"),
    }


def main():
    args = parse_args(__doc__, rounds=(int, 3, "renders each way"),
                      seconds=(float, 20.0, "length of the rendered timeline"))
    with Bench("ffmpeg", args.db, WORKER_POLL_SECONDS=0.2, PROGRESS_WRITE_SECONDS=1) as bench:
        from django.conf import settings

        from jobs import lifecycle
        from jobs.models import Job, Status
        from jobs.node.engines import get_engine
        from jobs.submission.timeline import clean_timeline

        files = make_media(bench.root / "Dropbox" / "media", args.seconds,
                           settings.FFMPEG_PATH)
        timeline = clean_timeline({
            "width": 1280, "height": 720, "fps": 30,
            "backgrounds": [{"src": files["still"], "type": "image"},
                            {"src": files["clip"], "type": "video", "crossfade": 1.0}],
            "audio": [{"src": files["tone"], "fade": 1.0, "decides_duration": True}]})
        worker = psutil.Process(bench.start_worker().pid)
        bench.wait_worker_ready()

        # The command the engine builds for this timeline, run by hand.
        workdir = bench.root / "by-hand"
        workdir.mkdir()
        sample = Job(id=uuid.uuid4(), engine="ffmpeg", config=timeline, preset={})
        argv = get_engine("ffmpeg").command(sample, workdir).argv

        def cpu() -> float:
            times = worker.cpu_times()
            return times.user + times.system

        def through_the_worker(n: int) -> None:
            used = cpu()
            job = lifecycle.submit(actor="bench", client="bench", engine="ffmpeg",
                                   name=f"bench{n}", config=timeline, preset={}).job
            deadline = time.monotonic() + 600
            while Job.objects.filter(pk=job.pk).exclude(
                    status__in=[Status.COMPLETED, Status.FAILED]).exists():
                if time.monotonic() > deadline:
                    sys.exit("timed out")
                time.sleep(0.1)
            job.refresh_from_db()
            if job.status != Status.COMPLETED:
                sys.exit(f"render failed: {job.error}")
            process.append(job.render_seconds)
            job_times.append((job.finished_at - job.started_at).total_seconds())
            worker_cpu.append(cpu() - used)

        def by_hand_once(_n: int) -> None:
            started = time.monotonic()
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           check=True)
            by_hand.append(time.monotonic() - started)

        process, job_times, by_hand, worker_cpu = [], [], [], []
        for n in range(args.rounds):
            # Alternate the order, so a slow spell of the machine hits both sides.
            steps = (through_the_worker, by_hand_once) if n % 2 == 0 else \
                (by_hand_once, through_the_worker)
            for step in steps:
                step(n)
            print(f"round {n + 1}: worker process {process[-1]:.2f} s, job "
                  f"{job_times[-1]:.2f} s, by hand {by_hand[-1]:.2f} s, worker CPU "
                  f"{worker_cpu[-1]:.2f} s", flush=True)

        print(f"{args.rounds} rounds, {args.seconds:g} s timeline at 1280x720 30 fps "
              f"({args.db}):")
        for pick, how in ((statistics.median, "median"), (min, "best")):
            hand = pick(by_hand)
            for label, values in (("ffmpeg process under the worker", process),
                                  ("job, claim to COMPLETED", job_times)):
                value = pick(values)
                overhead = (value - hand) / hand * 100
                verdict = "met" if overhead <= 5 else "MISSED"
                print(f"  {how:6} {label}: {value:.2f} s vs {hand:.2f} s by hand: "
                      f"overhead {overhead:+.1f} % (target <= 5 %: {verdict})")
        # Independent of other load on the machine: what the manager itself used.
        share = sum(worker_cpu) / sum(job_times) / (psutil.cpu_count() or 1) * 100
        print(f"  the worker process itself used {statistics.median(worker_cpu):.2f} s CPU "
              f"per job: {share:.1f} % of the machine's {psutil.cpu_count()} cores while "
              "rendering")


if __name__ == "__main__":
    main()
