"""A big render downloaded through daphne: time to the first byte, the web
process's growth, throughput.

    python bench/download_stream.py            # 2 GiB; targets: first byte < 1 s, growth < 50 MiB
    python bench/download_stream.py --gib 8 --stall 5

The output is a sparse file (no disk used). The client reads the first MiB,
stops reading for ``--stall`` seconds (a slow or sleeping client: the server
must wait, not read ahead into memory), then reads the rest as fast as it
can. The peer figure is the same file read straight from disk in this
process: what streaming costs on top of the read.
"""

import threading
import time
from urllib.parse import urlsplit

from harness import Bench, free_port, parse_args

MIB = 1024 * 1024


def main():
    args = parse_args(__doc__, gib=(float, 2.0, "size of the file in GiB"),
                      stall=(float, 3.0, "seconds the client stops reading after 1 MiB"))
    size = int(args.gib * 1024**3)
    with Bench("download_stream", args.db, ALLOWED_HOSTS="127.0.0.1,localhost") as bench:
        import psutil
        import requests
        from django.conf import settings
        from django.db import connections

        from accounts.models import User
        from jobs.links import signed_download_url
        from jobs.models import Job, Status

        folder = bench.root / "Dropbox" / "renders"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "big.mov"
        with open(path, "wb") as handle:
            handle.truncate(size)
        user = User.objects.create_user("alice", email="alice@studio.test")
        job = Job.objects.create(user=user, status=Status.COMPLETED, output_path="big.mov",
                                 output_size=size)
        port = free_port()
        settings.PUBLIC_URL = base = f"http://127.0.0.1:{port}"
        parts = urlsplit(signed_download_url(job))
        url = f"{base}{parts.path}?{parts.query}"
        connections.close_all()

        with bench.daphne(port) as daphne:
            web = psutil.Process(daphne.pid)
            requests.get(url, headers={"Range": "bytes=0-0"}, timeout=30).raise_for_status()
            baseline = web.memory_info().rss
            peak = [baseline]
            done = threading.Event()

            def watch():
                while not done.wait(0.02):
                    peak[0] = max(peak[0], web.memory_info().rss)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            started = time.monotonic()
            with requests.get(url, stream=True, timeout=120) as response:
                response.raise_for_status()
                chunks = response.iter_content(MIB)
                received = len(next(chunks))
                first_byte = time.monotonic() - started
                time.sleep(args.stall)
                streaming = time.monotonic()
                for chunk in chunks:
                    received += len(chunk)
                streamed = time.monotonic() - streaming
            done.set()
            watcher.join()
            cpu = web.cpu_times()

        started = time.monotonic()
        with open(path, "rb") as handle:
            while handle.readinto(bytearray(MIB)):
                pass
        from_disk = time.monotonic() - started
        path.unlink()

        growth = (peak[0] - baseline) / MIB
        print(f"{args.gib:g} GiB download through daphne (client stalls {args.stall:g} s "
              "after the first MiB)")
        print(f"  time to first byte   {first_byte * 1000:8.1f} ms   (target < 1000 ms)")
        print(f"  web process RSS      {growth:+8.1f} MiB  peak over the warm baseline "
              f"{baseline / MIB:.0f} MiB (target < 50 MiB)")
        print(f"  streaming            {received / MIB / streamed:8.0f} MiB/s "
              f"({received / MIB:.0f} MiB in {streamed:.1f} s after the stall; "
              f"daphne CPU {cpu.user + cpu.system:.1f} s)")
        print(f"  peer: read from disk {size / MIB / from_disk:8.0f} MiB/s (this process)")
        ok = received == size and first_byte < 1 and growth < 50
        print(f"targets: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
