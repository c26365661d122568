from django.apps import AppConfig


class PickupsConfig(AppConfig):
    name = "pickups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from pickups import receivers

        receivers.connect()
