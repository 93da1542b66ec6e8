"""Stopping a render when the node has lost contact with the database, on a
thread that never touches the database itself.

Another node may take a job over once this node's heartbeat is older than
NODE_TIMEOUT_SECONDS. So a render must stop before that, whatever the render
loop is doing: the loop checks between reads (jobs.node.render.Render.stop_check),
but a query to a database that went away without a word (a network partition,
a host that died) can block it, and the heartbeat thread with it, for as long
as TCP keeps trying. This watch reads only the heartbeat's clock in memory and
kills the render's process tree; the render loop, once it runs again, requeues
the job under its lease (a no-op if another node has taken it meanwhile).
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

log = logging.getLogger(__name__)

# Without a heartbeat the database took for this share of NODE_TIMEOUT_SECONDS,
# the render stops: soon another node may think this one dead and take the job.
LOST_CONTACT_SHARE = 0.8
CHECK_SECONDS = 0.5


def lost_contact(heartbeat) -> str:
    """Why the render must stop for lack of contact, or ""."""
    silent = heartbeat.silent_for()
    if silent > settings.NODE_TIMEOUT_SECONDS * LOST_CONTACT_SHARE:
        return f"lost contact with the database for {silent:.0f} s"
    return ""


def start(worker) -> threading.Thread:
    thread = threading.Thread(target=watch, args=(worker,), name="contact-watch", daemon=True)
    thread.start()
    return thread


def watch(worker) -> None:
    stop = worker.stop_requested
    while not stop.wait(CHECK_SECONDS):
        try:
            check(worker)
        except Exception:  # a bug here must not end the watch
            log.exception("contact watch failed")


def check(worker) -> bool:
    """Kill the running render if contact is lost; True if it did."""
    render = worker.rendering
    if render is None or render.contact_lost:
        return False
    why = lost_contact(worker.heartbeat)
    if not why:
        return False
    render.contact_lost = why
    proc = render.proc
    if proc is not None and not proc.exited():
        log.warning("%s: stopping the render of job %s", why, render.job.pk)
        proc.kill()
    return True
