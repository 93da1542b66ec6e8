"""Dispatch latency: POST /api/jobs on an idle node with a ready file -> aerender started.

    python bench/dispatch_latency.py --db postgres   # target p50 < 0.3 s
    python bench/dispatch_latency.py --db sqlite     # target p50 < 1 s
        [--jobs 30] [--engine nexrender|aerender] [--peer-jobs 4] [--peer-polling default,1000]

One render node, idle, and daphne serving the API (as `make run` does). Each
job is submitted over HTTP for a project file that is long in Dropbox (the
bench's settings: MIN_FILE_AGE_SECONDS=0, STABILITY_CHECK_SECONDS=0, so a
file is ready at its first check), at a random moment of the node's idle
wait, after the previous one rendered. The end is when the stand-in aerender
itself started (it logs its runs: AERENDER_SIM_TIMES), so everything the
manager does is inside: validation picking the job up, the file checks and
preflight, waking the node, the claim, the work folder, nexrender's start.
Where the time goes is printed from the job's own timestamps (medians).

nexrender's own server and worker (bench/nexrender_peer.py) get the same
jobs in the same run: POST /api/v1/jobs -> aerender started, at its default
NEXRENDER_API_POLLING (30 s: few jobs, they take long) and a tuned one.
"""

import json
import random
import statistics
import time
import uuid

import requests
from harness import Bench, free_port, parse_args, percentile
from nexrender_peer import POLLING_ARG, NexrenderPeer, aerender_runs_by_key, pollings


def wait_run(times_file, key: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = aerender_runs_by_key(times_file, [key])
        if key in found:
            return found[key]
        time.sleep(0.01)
    raise SystemExit(f"aerender never started for {key}")


def ours(args, bench) -> tuple[list[float], dict]:
    from accounts.models import ApiToken, MacUsername, User
    from jobs.models import Job, JobEvent, Status

    user = User.objects.create_user("bench", email="bench@studio.test")
    MacUsername.objects.create(user=user, name="bench")
    _, token = ApiToken.issue("bench")
    times_file = bench.root / "aerender-times-ours.jsonl"
    bench.start_worker(AERENDER_SIM_TIMES=times_file, RENDER_ENGINE=args.engine)
    bench.wait_worker_ready()
    latencies = []
    parts = {"submitted -> validating": [], "validating -> queued": [],
             "queued -> claimed": [], "claimed -> render process handed its job": [],
             "handed -> aerender started": []}
    port = free_port()
    with bench.daphne(port), requests.Session() as http:
        for n in range(args.jobs):
            path = bench.project(f"d{n}.aep")
            # Let the node settle into its idle wait, at a random phase of its polls.
            time.sleep(0.3 + random.random() * 0.7)
            sent = time.time()
            response = http.post(f"http://127.0.0.1:{port}/api/jobs", headers={
                "X-API-Token": token}, json={
                "project_path": str(path), "mac_username": "bench",
                "saved_at": "2020-01-01T00:00:00Z",
                "nexrender": {"template": {"composition": "main"}}}, timeout=30)
            if response.status_code not in (201, 202):
                raise SystemExit(f"submission refused: {response.status_code} {response.text}")
            job_id = uuid.UUID(response.json()["id"])
            run = wait_run(times_file, job_id.hex)
            latencies.append(run["start"] - sent)
            deadline = time.monotonic() + 60
            while Job.objects.filter(pk=job_id).exclude(
                    status__in=[Status.COMPLETED, Status.FAILED]).exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {job_id} did not finish")
                time.sleep(0.02)
            job = Job.objects.get(pk=job_id)
            if job.status != Status.COMPLETED:
                raise SystemExit(f"job {n} failed: {job.error}")
            at = {e.to_status: e.created_at.timestamp() for e in JobEvent.objects.filter(
                job_id=job_id).exclude(kind="progress").order_by("id")}
            parts["submitted -> validating"].append(at["VALIDATING"] - at["PENDING"])
            parts["validating -> queued"].append(at["QUEUED"] - at["VALIDATING"])
            parts["queued -> claimed"].append(job.started_at.timestamp() - at["QUEUED"])
            parts["claimed -> render process handed its job"].append(
                job.render_spawned_at.timestamp() - job.started_at.timestamp())
            parts["handed -> aerender started"].append(
                run["start"] - job.render_spawned_at.timestamp())
    return latencies, parts


def peer(args, bench, polling_ms, jobs: int) -> tuple[list[float], str]:
    times_file = bench.root / f"aerender-times-peer-{polling_ms}.jsonl"
    latencies = []
    with NexrenderPeer(bench.root / f"peer-{polling_ms or 'default'}", str(bench.aerender),
                       times_file, polling_ms=polling_ms) as nx:
        nx.start_worker()
        time.sleep(2)  # its start-up: it fetches the (empty) list once, then polls
        for n in range(jobs):
            path = bench.project(f"p{polling_ms}-{n}.aep")
            time.sleep(0.3 + random.random() * 0.7)
            uid = uuid.uuid4().hex
            sent = time.time()
            nx.submit(uid, path)
            run = wait_run(times_file, uid, timeout=(polling_ms or 30_000) / 1000 + 60)
            latencies.append(run["start"] - sent)
            nx.wait_done([uid], timeout=60)
        return latencies, nx.label


def main():
    args = parse_args(__doc__, jobs=(int, 30, "how many jobs"),
                      engine=(str, "nexrender", "our render engine"),
                      peer_jobs=(int, 4, "jobs for each nexrender peer (0: no peer)"),
                      peer_polling=POLLING_ARG)
    with Bench("dispatch", args.db) as bench:
        latencies, parts = ours(args, bench)
        peers = []
        if args.peer_jobs:
            for proc in bench.workers:
                proc.terminate()
                proc.wait(timeout=30)
            for polling_ms in pollings(args.peer_polling):
                peers.append(peer(args, bench, polling_ms, args.peer_jobs))
        target = 0.3 if args.db == "postgres" else 1.0
        print(f"dispatch on {args.db}: POST /api/jobs -> aerender started (as the stand-in "
              f"logs it), idle node, ready file")
        ms = [v * 1000 for v in latencies]
        print(f"  ours, {args.engine} engine: n={len(ms)} p50={percentile(ms, 50):.0f} ms "
              f"p95={percentile(ms, 95):.0f} ms max={max(ms):.0f} ms")
        for label, values in parts.items():
            print(f"    {label}: median {statistics.median(values) * 1000:.0f} ms")
        for values, label in peers:
            ms = [v * 1000 for v in values]
            print(f"  {label}: n={len(ms)} p50={percentile(ms, 50):.0f} ms "
                  f"max={max(ms):.0f} ms")
        p50 = percentile(latencies, 50)
        print(f"target p50 < {target * 1000:.0f} ms: {'met' if p50 < target else 'MISSED'} "
              f"({p50 * 1000:.0f} ms)")
        print(json.dumps({"p50_ms": round(p50 * 1000, 1)}))


if __name__ == "__main__":
    main()
