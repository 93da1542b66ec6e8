"""The Django admin app, with the site of accounts.admin_site (imported once apps are ready)."""

from django.contrib.admin.apps import AdminConfig


class AdminSiteConfig(AdminConfig):
    default_site = "accounts.admin_site.AdminSite"
