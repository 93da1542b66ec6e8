"""Signed links to a job's output, poster frame and review preview.

A signed link lets a Slack message, a webhook receiver or a browser without a
session fetch one job's output (or thumbnail) for an hour. The signature
binds the job id and a timestamp; the secret is SECRET_KEY. Links are made by
notifications and the API and checked by the download views.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.urls import reverse

DOWNLOAD_SALT = "jobs.download"
THUMBNAIL_SALT = "jobs.thumbnail"
PREVIEW_SALT = "jobs.preview"
PREVIEW_THUMBNAIL_SALT = "jobs.preview.thumbnail"
VIDEO_SALT = "jobs.video"
DOWNLOAD_URL_SECONDS = 3600


def _signer(salt: str = DOWNLOAD_SALT) -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=salt)


def download_signature(job_id, salt: str = DOWNLOAD_SALT) -> str:
    """The ``signature`` query value for a job's download link, from now on.

    Another ``salt`` signs links to something else of the job (its thumbnail).
    """
    # The signed text is "<id>:<time>:<mac>"; the id is in the URL already.
    return _signer(salt).sign(str(job_id)).split(":", 1)[1]


def _signed_url(route: str, job, salt: str) -> str:
    path = reverse(route, args=[job.pk])
    signature = quote(download_signature(job.pk, salt=salt), safe="")
    return f"{settings.PUBLIC_URL}{path}?signature={signature}"


def signed_download_url(job) -> str:
    """An absolute download link for ``job``'s output, valid DOWNLOAD_URL_SECONDS."""
    return _signed_url("api-job-download", job, DOWNLOAD_SALT)


def check_download_signature(job_id, signature: str, salt: str = DOWNLOAD_SALT) -> str | None:
    """None if ``signature`` opens ``job_id``'s download now, else why not."""
    if not isinstance(signature, str) or len(signature) > 200:
        return "The download link is invalid."
    try:
        _signer(salt).unsign(f"{job_id}:{signature}", max_age=DOWNLOAD_URL_SECONDS)
    except signing.SignatureExpired:
        return "The download link has expired (links are valid for one hour)."
    except signing.BadSignature:
        return "The download link is invalid."
    return None


def signed_thumbnail_url(job) -> str | None:
    """An absolute link to ``job``'s poster frame, valid an hour; None without one."""
    if not job.has_thumbnail:
        return None
    return _signed_url("api-job-thumbnail", job, THUMBNAIL_SALT)


def _checker(salt: str, what: str):
    def check(job_id, signature: str) -> str | None:
        problem = check_download_signature(job_id, signature, salt=salt)
        return problem.replace("download link", what) if problem else None
    return check


# Each: None if the signature opens that file of ``job_id`` now, else why not.
check_thumbnail_signature = _checker(THUMBNAIL_SALT, "thumbnail link")
check_preview_signature = _checker(PREVIEW_SALT, "preview link")
check_preview_thumbnail_signature = _checker(PREVIEW_THUMBNAIL_SALT, "preview thumbnail link")
check_video_signature = _checker(VIDEO_SALT, "video link")


def signed_video_url(job) -> str:
    """An absolute link to the preview video (H.264) of ``job``'s output, valid an hour."""
    return _signed_url("api-job-video", job, VIDEO_SALT)


def signed_preview_url(job) -> str:
    """An absolute link to ``job``'s review preview (a small H.264), valid an hour."""
    return _signed_url("api-job-preview", job, PREVIEW_SALT)


def signed_preview_thumbnail_url(job, preview) -> str | None:
    """An absolute link to the poster frame of ``preview`` (``job``'s JobPreview)."""
    if preview.width is None:  # no poster (jpeg) was grabbed
        return None
    return _signed_url("api-job-preview-thumbnail", job, PREVIEW_THUMBNAIL_SALT)
