"""``django.contrib.admin`` with the console's admin site as ``admin.site`` (Django's
documented way to override the default site: ``AdminConfig.default_site``)."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "sync.console.site.ConsoleAdminSite"
