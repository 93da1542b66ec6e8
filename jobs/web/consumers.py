"""Websockets that keep the job list and a job's page live.

Messages are HTML: each top-level element is an htmx out-of-band swap (the
ws extension replaces the element with the same id). A connection only ever
joins groups for jobs its user may see: their own (``user-<id>``), everyone's
for admins (``admins``), or one job they may see (``job-<id>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from importlib import import_module
from types import SimpleNamespace

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user
from django.http import QueryDict
from django.template.loader import render_to_string
from django.urls import path

from accounts.models import User
from jobs.web.filters import JobFilter, counts_context, page_of_jobs
from jobs.web.live import ADMINS, batch_group, bridge, job_group, notify_group, user_group

# The tab counts of a list page follow its jobs at most this often (one recount
# covers every change in between).
RECOUNT_SECONDS = 1.0

log = logging.getLogger(__name__)

# Close codes in the application range, so the browser can tell why. A socket
# refused before its handshake is accepted reaches a browser as an HTTP 403, which
# it reports as a lost connection (1006): the page said "Reconnecting…" and knocked
# again every few seconds for as long as it stayed open. So the socket is accepted
# first and closed with its reason; nothing is sent on it.
UNAUTHENTICATED = 4401
NOT_FOUND = 4404
RECONNECT = 1012  # "service restart": the page's socket tries again (and catches up)

# A socket is let in once, at its handshake. What may end that leave while it stays
# open (signed out elsewhere, an expired session, a password changed, an account
# switched off, the job deleted) is looked at this often, and the socket closed with
# its reason; until then it went on receiving the rows of a person signed out.
LEAVE_CHECK_SECONDS = 30.0


def _nothing(*args, **kwargs) -> None:
    return None


class JobsSocket(AsyncWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self):
        self.groups_joined = []
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.refuse(UNAUTHENTICATED)
            return
        groups = await self.groups_for_user()
        if groups is None:
            await self.refuse(NOT_FOUND)
            return
        await bridge.start()
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()
        self.leave_check = asyncio.ensure_future(self.check_leave())

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    async def leave_groups(self) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []

    async def disconnect(self, code):
        await self.leave_groups()
        for name in ("recount", "leave_check"):
            task = getattr(self, name, None)
            if task is not None and not task.done():
                task.cancel()

    async def check_leave(self) -> None:
        # The first look at a random point of the period: after a server restart every
        # page connects within a second, and their looks would queue together at each
        # turn on the one thread the sockets share for the database.
        wait = random.uniform(0.5, 1.0) * LEAVE_CHECK_SECONDS
        while True:
            await asyncio.sleep(wait)
            wait = LEAVE_CHECK_SECONDS
            try:
                code = await database_sync_to_async(self.leave_ended)()
            except Exception:  # a database away is no reason to end the page's leave
                log.warning("live socket: could not check its leave", exc_info=True)
                continue
            if code is not None:
                # Out of the groups first: a row pushed between the close and its
                # answer would be sent on a closed socket.
                await self.leave_groups()
                await self.close(code=code)
                return

    def leave_ended(self) -> int | None:
        """The close code once this socket may no longer follow what it follows."""
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if key is None:
            return UNAUTHENTICATED
        # Django's own answer for a request with this session (expiry, the password's
        # hash, the backend, an account switched off), from a copy that changes
        # nothing: get_user may cycle or flush the session it is given.
        peek = import_module(settings.SESSION_ENGINE).SessionStore(key)
        peek.cycle_key = peek.flush = _nothing  # (a subclass would not decode: its salt)
        now = get_user(SimpleNamespace(session=peek))
        if not now.is_authenticated or now.pk != self.user.pk:
            # Not 4401 yet: the browser's cookie may hold a newer session (a password
            # changed on this page gives the session a new key). The page's socket tries
            # again at once, and its handshake, with the cookie it has now, decides.
            return RECONNECT
        if now.is_admin != self.user.is_admin:
            return RECONNECT  # what it may see changed: the page asks again at once
        return None if self.sees(now) else NOT_FOUND

    def sees(self, person: User) -> bool:
        """Whether ``person`` may follow what this socket follows (the one job or batch
        of its page; the list and notifications follow the person's own)."""
        return True

    async def receive(self, text_data=None, bytes_data=None):
        pass  # the page never talks back

    async def job_estimates(self, event):
        pass

    def may_see(self, owner_id) -> bool:
        # Group membership already guarantees this; checked again because a
        # leaked row is the one mistake this socket must never make.
        return self.user.is_admin or (owner_id is not None and owner_id == self.user.pk)


class JobListSocket(JobsSocket):
    """``/ws/jobs?<the list's filters>``: rows change in place; new jobs appear on top."""

    async def groups_for_user(self):
        params = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        self.filters = JobFilter(params, self.user)
        self.shown: set[str] | None = None  # the rows on the page, read when first needed
        self.recount: asyncio.Task | None = None
        return [ADMINS] if self.user.is_admin else [user_group(self.user.pk)]

    async def job_estimates(self, event):
        """Queue ETAs that changed: those of the rows on this page."""
        rows = event.get("rows") or {}
        if not rows:
            return
        if self.shown is None:
            self.shown = await self.rows_on_page()
        owners = event.get("owners") or {}
        html = "".join(html for job_id, html in rows.items()
                       if job_id in self.shown and self.may_see(owners.get(job_id)))
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def rows_on_page(self) -> set[str]:
        rows, _ = page_of_jobs(self.filters)
        return {str(job.pk) for job in rows}

    async def job_row(self, event):
        if not self.may_see(event.get("owner_id")):
            return
        if event.get("new") or event.get("moved"):
            self.schedule_recount()
        html = event["html"]
        if event.get("new"):
            if not await self.shows_new_job(event["job_id"]):
                return
            # The page shows an empty state only while its table has no rows (CSS).
            html = f'<tbody hx-swap-oob="afterbegin:#job-rows">{html}</tbody>'
            if self.shown is not None:
                self.shown.add(event["job_id"])
        await self.send(text_data=html)

    def schedule_recount(self) -> None:
        """Send the tab counts and the job count again, soon (once for a burst)."""
        if self.recount is None or self.recount.done():
            self.recount = asyncio.ensure_future(self._recount())

    async def _recount(self) -> None:
        await asyncio.sleep(RECOUNT_SECONDS)
        with contextlib.suppress(Exception):  # a count is a courtesy: never close the page
            html = await database_sync_to_async(self.counts_html)()
            await self.send(text_data=html)

    def counts_html(self) -> str:
        if self.filters.cursor is not None:
            return ""
        context = {**counts_context(self.filters), "oob": True}
        return (render_to_string("jobs/_tabs.html", context)
                + render_to_string("jobs/_count.html", context))

    async def job_detail(self, event):
        pass

    @database_sync_to_async
    def shows_new_job(self, job_id) -> bool:
        """New jobs go on top of the first page of a newest-first list they match."""
        if self.filters.sort != "newest" or self.filters.cursor is not None:
            return False
        return self.filters.matches(job_id)


class JobDetailSocket(JobsSocket):
    """``/ws/jobs/<id>``: one job's status, progress, facts and timeline."""

    async def groups_for_user(self):
        self.job_id = str(self.scope["url_route"]["kwargs"]["job_id"])
        if not await database_sync_to_async(self.sees)(self.user):
            return None
        return [job_group(self.job_id)]

    def sees(self, person: User) -> bool:
        from jobs.access import visible_jobs

        return visible_jobs(person).filter(pk=self.job_id).exists()

    async def job_row(self, event):
        pass

    async def job_detail(self, event):
        if event.get("job_id") != self.job_id:
            return
        await self.send(text_data=event["html"])

    async def job_estimates(self, event):
        if event.get("job_id") == self.job_id and event.get("html"):
            await self.send(text_data=event["html"])


class NotifySocket(JobsSocket):
    """``/ws/notify``: what happens to the person's own renders, as JSON, for the
    browser's notifications (only the events they chose in their profile)."""

    async def groups_for_user(self):
        return [notify_group(self.user.pk)]

    @database_sync_to_async
    def wanted(self) -> list[str]:
        # Read at each event, not at connect: a choice changed in the profile (in
        # another tab) holds for the pages already open.
        person = User.objects.filter(pk=self.user.pk).only("notifications").first()
        return person.notified("browser") if person is not None else []

    async def job_notify(self, event):
        if event.get("owner_id") != self.user.pk:
            return
        wanted = await self.wanted()
        chosen = [name for name in event.get("events", []) if name in wanted]
        if chosen:
            await self.send(text_data=json.dumps({
                "job": event["job_id"], "events": chosen, "name": event["name"],
                "error": (event.get("error") or "").split("\n", 1)[0][:200],
                "url": event["url"]}))


class BatchSocket(JobsSocket):
    """``/ws/batches/<id>``: a batch's row cards and counts."""

    async def groups_for_user(self):
        self.batch_id = str(self.scope["url_route"]["kwargs"]["batch_id"])
        if not await database_sync_to_async(self.sees)(self.user):
            return None
        return [batch_group(self.batch_id)]

    def sees(self, person: User) -> bool:
        from jobs.access import visible_batches

        return visible_batches(person).filter(pk=self.batch_id).exists()

    async def batch_rows(self, event):
        if event.get("batch_id") != self.batch_id:
            return
        await self.send(text_data=event["html"])


websocket_urlpatterns = [
    path("ws/jobs", JobListSocket.as_asgi()),
    path("ws/jobs/<uuid:job_id>", JobDetailSocket.as_asgi()),
    path("ws/notify", NotifySocket.as_asgi()),
    path("ws/batches/<uuid:batch_id>", BatchSocket.as_asgi()),
]
