"""restore_data: restore the database and file storage from a backup with webnovel-backup."""

from webnovel_backup_django.runner import BinaryCommand


class Command(BinaryCommand):
    help = (
        "Restore the database and file storage from a backup folder or .tar.gz (runs "
        "`webnovel-backup restore`; its other flags, e.g. --models, --merge or --json, are passed through)."
    )
    subcommand = "restore"

    def add_arguments(self, parser):
        parser.add_argument("backup_path", help="Path to the backup directory or .tar.gz archive")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be restored without restoring")
        parser.add_argument("--force", action="store_true", help="Restore without asking for confirmation")
        parser.add_argument("--skip-files", action="store_true", help="Skip file storage restoration")
        parser.add_argument("--skip-db", action="store_true", help="Skip database restoration")

    def arguments(self, options):
        argv = [str(options["backup_path"])]
        for flag in ("dry_run", "force", "skip_files", "skip_db"):
            if options.get(flag):
                argv.append("--" + flag.replace("_", "-"))
        return argv
