"""Websockets that keep the job list and a job's page live.

Messages are HTML: each top-level element is an htmx out-of-band swap (the
ws extension replaces the element with the same id). A connection only ever
joins groups for jobs its user may see: their own (``user-<id>``), everyone's
for admins (``admins``), or one job they may see (``job-<id>``).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict
from django.urls import path

from jobs.web.filters import JobFilter, page_of_jobs
from jobs.web.live import ADMINS, batch_group, bridge, job_group, user_group

# Close codes in the application range, so the browser can tell why.
UNAUTHENTICATED = 4401
NOT_FOUND = 4404


class JobsSocket(AsyncWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self):
        self.groups_joined = []
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        groups = await self.groups_for_user()
        if groups is None:
            await self.close(code=NOT_FOUND)
            return
        await bridge.start()
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()

    async def disconnect(self, code):
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

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
        html = event["html"]
        if event.get("new"):
            if not await self.shows_new_job(event["job_id"]):
                return
            html = (f'<tbody hx-swap-oob="afterbegin:#job-rows">{html}</tbody>'
                    '<div id="jobs-empty" hx-swap-oob="delete"></div>')
            if self.shown is not None:
                self.shown.add(event["job_id"])
        await self.send(text_data=html)

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
        from jobs.access import visible_jobs

        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        visible = visible_jobs(self.user).filter(pk=job_id)  # lazy: no query yet
        if not await database_sync_to_async(visible.exists)():
            return None
        self.job_id = str(job_id)
        return [job_group(job_id)]

    async def job_row(self, event):
        pass

    async def job_detail(self, event):
        if event.get("job_id") != self.job_id:
            return
        await self.send(text_data=event["html"])

    async def job_estimates(self, event):
        if event.get("job_id") == self.job_id and event.get("html"):
            await self.send(text_data=event["html"])


class BatchSocket(JobsSocket):
    """``/ws/batches/<id>``: a batch's row cards and counts."""

    async def groups_for_user(self):
        from jobs.access import visible_batches

        batch_id = self.scope["url_route"]["kwargs"]["batch_id"]
        visible = visible_batches(self.user).filter(pk=batch_id)  # lazy: no query yet
        if not await database_sync_to_async(visible.exists)():
            return None
        self.batch_id = str(batch_id)
        return [batch_group(batch_id)]

    async def batch_rows(self, event):
        if event.get("batch_id") != self.batch_id:
            return
        await self.send(text_data=event["html"])


websocket_urlpatterns = [
    path("ws/jobs", JobListSocket.as_asgi()),
    path("ws/jobs/<uuid:job_id>", JobDetailSocket.as_asgi()),
    path("ws/batches/<uuid:batch_id>", BatchSocket.as_asgi()),
]
