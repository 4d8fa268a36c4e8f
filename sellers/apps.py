from django.apps import AppConfig


class SellersConfig(AppConfig):
    name = "sellers"
    default_auto_field = "django.db.models.BigAutoField"
