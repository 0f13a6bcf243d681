"""test_backup_restore: back up, restore into scratch targets and compare, with webnovel-backup."""

from webnovel_backup_django.runner import BinaryCommand


class Command(BinaryCommand):
    help = (
        "Test backup and restore: back up this project's database and storage, restore them into "
        "scratch targets and compare every row and file; PASS or FAIL (runs "
        "`webnovel-backup test-backup-restore`; its flags are passed through)."
    )
    subcommand = "test-backup-restore"

    def arguments(self, options):
        return []
