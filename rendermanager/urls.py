from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts.urls import api_urlpatterns as user_api_urlpatterns
from jobs.api import views as api_views
from systemadmin.metrics import metrics_view
from systemadmin.urls import api_urlpatterns as system_api_urlpatterns
from systemadmin.urls import report_api_urlpatterns

urlpatterns = [
    path("health", api_views.liveness, name="health"),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/user/", include(user_api_urlpatterns)),
    path("api/system/", include(system_api_urlpatterns)),
    path("api/reports/", include(report_api_urlpatterns)),
    path("api/", include("jobs.api.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("accounts.urls")),
    path("", include("systemadmin.urls")),
    path("", include("jobs.urls")),
]
