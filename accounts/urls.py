from django.urls import path

from accounts import api, views

urlpatterns = [
    path("profile", views.profile, name="profile"),
]

# Mounted under /api/user/ by rendermanager/urls.py.
api_urlpatterns = [
    path("profile", api.ProfileView.as_view(), name="api-user-profile"),
    path("mac-usernames", api.MacUsernamesView.as_view(), name="api-user-mac-usernames"),
    path("slack-id", api.SlackIdView.as_view(), name="api-user-slack-id"),
]
