"""The Django admin (raw data fixes) answers bad query strings with 4xx, never 500."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

BIG = "9" * 20


@pytest.mark.parametrize("url", [
    f"/admin/jobs/job/?user={BIG}", f"/admin/jobs/job/?user__id__exact={BIG}",
    f"/admin/jobs/job/?priority=-{BIG}", f"/admin/accounts/user/?id={BIG}",
    f"/admin/jobs/jobevent/?id__gt={BIG}", f"/admin/jobs/job/?p={BIG}",
    f"/admin/jobs/rendernode/{BIG}/change/?x={BIG}",
    "/admin/jobs/job/?q=%00", "/admin/jobs/jobevent/?kind=a%00b", "/admin/jobs/job/?%00=1",
])
def test_a_number_beyond_any_record_is_400(staff, url):
    response = staff.get(url)

    assert response.status_code == 400
    assert b"too large for any record, or a NUL" in response.content


@pytest.mark.parametrize("url", [
    "/admin/jobs/job/?user=%C2%B2", "/admin/jobs/job/?user__id__exact=%C2%B2",
    f"/admin/jobs/rendernode/{BIG}/change/", "/admin/jobs/rendernode/%C2%B2/change/",
    f"/admin/accounts/user/{BIG}/change/",
    "/admin/jobs/job/?o=99", "/admin/jobs/job/?created_at__gte=9999-12-31",
])
def test_other_nonsense_is_handled_by_the_admin_itself(staff, url):
    assert staff.get(url).status_code in (200, 302, 404)


def test_ordinary_filters_still_work(staff, user):
    assert staff.get(f"/admin/jobs/job/?user__id__exact={user.pk}").status_code == 200
    assert staff.get("/admin/jobs/job/?priority=-5").status_code == 200


def test_claims_can_be_decided_in_the_django_admin_too(staff, user):
    from accounts.models import MacUsername

    claim = MacUsername.objects.get(user=user)
    assert "alice" in staff.get("/admin/accounts/macusername/?status__exact=approved") \
        .content.decode()

    staff.post("/admin/accounts/macusername/", {"action": "refuse",
                                                "_selected_action": [claim.pk]})

    claim.refresh_from_db()
    assert claim.status == MacUsername.Status.REFUSED and claim.decided_by is not None
