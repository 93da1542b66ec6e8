"""Slack notifications: DMs to a job's user, alerts to the admin channel.

Receivers of ``lifecycle.job_transitioned`` build the message at once (one
small query) and hand it to a background dispatcher; the worker never waits
for Slack. Delivery uses slack-sdk's ``WebClient`` with a short timeout and no
retries: a failed delivery is logged and dropped.

- DM to the job's user (``User.slack_user_id``): render started, preview ready
  for review (with a signed link to watch it), completed (with a signed
  download link), failed.
- ``SLACK_ADMIN_CHANNEL`` (``alert_admins()``): a render that failed for good,
  a render node that stopped responding, a disk nearly full, a failed update
  (raised by ``systemadmin.signals`` and ``systemadmin.events``).

Every text is escaped where it is sent (``escape()``): messages carry file
names, errors and paths from clients, and Slack reads ``<!channel>``,
``<@U123>`` or ``<https://evil|link>`` in them as mentions and links.
"""

from __future__ import annotations

import logging

from django.conf import settings

from jobs.notify.dispatch import Dispatcher

log = logging.getLogger(__name__)

dispatcher = Dispatcher("slack")


# --- Sending ------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters as its entities (Slack's formatting guide)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_enabled() -> bool:
    return bool(settings.SLACK_BOT_TOKEN)


def client():
    from slack_sdk import WebClient

    return WebClient(token=settings.SLACK_BOT_TOKEN, base_url=settings.SLACK_API_URL + "/",
                     timeout=settings.SLACK_TIMEOUT_SECONDS,
                     # Never retried: a message late by minutes is worse than none.
                     retry_handlers=[])


def _deliver_dm(slack_user_id: str, text: str) -> None:
    web = client()
    try:
        opened = web.conversations_open(users=slack_user_id)
        channel = opened["channel"]["id"]
        web.chat_postMessage(channel=channel, text=text, unfurl_links=False)
    except Exception as exc:
        log.warning("Slack DM to %s not delivered: %s", slack_user_id, _reason(exc))


def _deliver_channel(channel: str, text: str) -> None:
    try:
        client().chat_postMessage(channel=channel, text=text, unfurl_links=False)
    except Exception as exc:
        log.warning("Slack message to %s not delivered: %s", channel, _reason(exc))


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    error = None
    if response is not None:
        try:
            error = response.get("error")
        except Exception:
            error = None
    return error or f"{type(exc).__name__}: {exc}"


def send_dm(slack_user_id: str, text: str) -> bool:
    """Queue a DM; returns False when Slack is off or there is nobody to tell."""
    if not slack_enabled() or not slack_user_id:
        return False
    text = escape(text)
    return dispatcher.submit(lambda: _deliver_dm(slack_user_id, text), f"DM to {slack_user_id}")


def alert_admins(text: str) -> bool:
    """Queue a message to SLACK_ADMIN_CHANNEL; never blocks, never raises."""
    channel = settings.SLACK_ADMIN_CHANNEL
    if not slack_enabled() or not channel:
        log.info("admin alert (no Slack admin channel): %s", text)
        return False
    text = f":warning: {escape(text)}"
    return dispatcher.submit(lambda: _deliver_channel(channel, text), f"alert to {channel}")


# --- Messages for job transitions --------------------------------------------------


def job_link(job) -> str:
    return f"{settings.PUBLIC_URL}/jobs/{job.pk}"


def dm_text(job, to_status: str, message: str = "") -> str | None:
    from jobs.models import Status

    name = job.display_name
    if to_status == Status.RENDERING:
        node = f" on {job.node.name}" if job.node_id else ""
        return f":clapper: Your render *{name}* has started{node}. {job_link(job)}"
    if to_status == Status.COMPLETED:
        from jobs.links import signed_download_url

        return (f":white_check_mark: Your render *{name}* is done.\n"
                f"Download (link valid for one hour): {signed_download_url(job)}")
    if to_status == Status.FAILED:
        reason = job.error or message or "unknown error"
        return f":x: Your render *{name}* failed: {reason}\n{job_link(job)}"
    if to_status == Status.AWAITING_REVIEW:
        from jobs.links import signed_preview_url

        return (f":eyes: The preview of *{name}* is ready for review.\n"
                f"Watch it (link valid for one hour): {signed_preview_url(job)}\n"
                f"Approve or reject it: {settings.PUBLIC_URL}/review")
    return None


# The person's notification setting (accounts.models.NOTIFY_EVENTS) for each DM.
EVENTS = {"RENDERING": "started", "AWAITING_REVIEW": "preview", "COMPLETED": "completed",
          "FAILED": "failed"}


def on_transition(sender, job_id, from_status, to_status, kind, actor, message, **_):
    """Receiver of lifecycle.job_transitioned: DM the job's user, if they want to be
    told of that event on Slack (their profile). (Admin-channel alerts about jobs are
    sent by systemadmin.signals.)"""
    if not slack_enabled() or to_status not in EVENTS:
        return
    from jobs.models import Job

    try:
        job = Job.objects.select_related("user", "node").filter(pk=job_id).first()
        if job is None or job.user is None or not job.user.slack_user_id:
            return
        if not job.user.wants("slack", EVENTS[to_status]):
            return
        text = dm_text(job, to_status, message)
        if text:
            send_dm(job.user.slack_user_id, text)
    except Exception:  # never let a notification problem reach the worker
        log.exception("could not prepare the Slack DM for job %s", job_id)
