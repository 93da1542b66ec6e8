from django.apps import AppConfig


class SystemadminConfig(AppConfig):
    name = "systemadmin"
