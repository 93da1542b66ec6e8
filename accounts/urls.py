from django.urls import path

from accounts import api, views

urlpatterns = [
    path("profile", views.profile, name="profile"),
    path("profile/notifications", views.notifications, name="profile-notifications"),
    path("profile/tokens", views.create_token, name="profile-token-create"),
    path("profile/tokens/<int:token_id>/revoke", views.revoke_token, name="profile-token-revoke"),
]

# Mounted under /api/user/ by rendermanager/urls.py.
api_urlpatterns = [
    path("profile", api.ProfileView.as_view(), name="api-user-profile"),
    path("mac-usernames", api.MacUsernamesView.as_view(), name="api-user-mac-usernames"),
    path("slack-id", api.SlackIdView.as_view(), name="api-user-slack-id"),
]
