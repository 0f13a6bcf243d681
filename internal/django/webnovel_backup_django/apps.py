from django.apps import AppConfig


class WebnovelBackupConfig(AppConfig):
    """The app only contributes management commands: no models, no migrations."""

    name = "webnovel_backup_django"
    verbose_name = "webnovel-backup"
