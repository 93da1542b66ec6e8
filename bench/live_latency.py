"""Live latency: a worker's progress write → the browser's DOM shows it.

    python bench/live_latency.py --db postgres   # target p50 < 300 ms
    python bench/live_latency.py --db sqlite     # the bridge polls every 0.5 s there

daphne serves the dashboard; Chromium (Debian's) shows the job list and the
job's page. This process plays the render worker: it writes progress the way
jobs.node.worker does (the job row, then a "progress" JobEvent) and notes the
time. A MutationObserver in each page notes when the new percentage appears.
The difference is the whole path: outbox → NOTIFY or poll → bridge → render
→ websocket → htmx swap.
"""

import os
import random
import sys
import time
from pathlib import Path

from harness import Bench, free_port, parse_args, summary

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-quic",
                 "--disable-sync"]

# Records when each percentage first shows in the job's progress bar.
OBSERVER = """(jobId) => {
  window.__shown = {};
  const look = () => {
    const bar = document.querySelector(`#job-${jobId} [role=progressbar]`)
             || document.querySelector('#job-progress [role=progressbar]');
    if (!bar) return;
    const value = bar.getAttribute('aria-valuenow');
    if (!(value in window.__shown)) window.__shown[value] = Date.now();
  };
  new MutationObserver(look).observe(document.body,
    {subtree: true, childList: true, attributes: true});
  look();
}"""


def main():
    args = parse_args(__doc__, samples=(int, 60, "progress writes to time"))
    if not Path(CHROMIUM).exists():
        sys.exit("needs Chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # between its calls are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with Bench("live_latency", args.db, DEBUG="false", SECRET_KEY="bench-" + "x" * 40,
               ALLOWED_HOSTS="127.0.0.1,localhost", ALLOW_PASSWORD_LOGIN="true") as bench:
        from django.db import connections

        from accounts.models import User
        from jobs import lifecycle
        from jobs.models import Job, Status

        user = User.objects.create_user("alice", email="alice@studio.test", password="pw")
        job = Job.objects.create(user=user, status=Status.RENDERING, name="latency probe",
                                 project_path="D:\\Dropbox\\probe.aep", phase="rendering")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with bench.daphne(port), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=CHROMIUM_ARGS)
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base}/accounts/login/")
            page.fill("#id_login", "alice")
            page.fill("#id_password", "pw")
            page.click("#password-login button[type=submit]")
            detail = context.new_page()
            detail.goto(f"{base}/jobs/{job.pk}")
            pages = {"job list": page, "job page": detail}
            for view in pages.values():
                view.wait_for_selector("#live.on", timeout=15_000)
                view.evaluate(OBSERVER, str(job.pk))

            rng = random.Random(3)
            latencies = {name: [] for name in pages}
            for n in range(1, args.samples + 1):
                value = n % 99 + 1
                # Land at a random point of the bridge's poll cycle (SQLite).
                time.sleep(0.2 + rng.random() * 0.5)
                for view in pages.values():
                    view.evaluate("(v) => { delete window.__shown[v]; }", str(value))
                written = time.time() * 1000
                # What jobs.node.render.Render._write_progress does.
                Job.objects.filter(pk=job.pk).update(progress=value, frames_done=value,
                                                     eta_seconds=100 - value)
                lifecycle.record(job.pk, "progress", to_status=Status.RENDERING,
                                 message=f"{value}%")
                for name, view in pages.items():
                    shown = view.wait_for_function(
                        "(v) => window.__shown[v]", arg=str(value), timeout=10_000,
                        polling=10).json_value()
                    latencies[name].append((shown - written) / 1000)
            browser.close()
        connections.close_all()

        bridge = "LISTEN/NOTIFY" if args.db == "postgres" else "polling every 0.5 s"
        print(f"live latency on {args.db} ({bridge}): progress write -> DOM updated")
        for name, values in latencies.items():
            print("  " + summary(f"{name:<9}", values))
        p50 = sorted(latencies["job list"])[len(latencies["job list"]) // 2]
        if args.db == "postgres":
            print(f"target p50 < 300 ms: {'met' if p50 < 0.3 else 'MISSED'}")


if __name__ == "__main__":
    main()
