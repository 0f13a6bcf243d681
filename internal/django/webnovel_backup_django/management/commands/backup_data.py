"""backup_data: back up the database and file storage with webnovel-backup."""

from webnovel_backup_django.runner import BinaryCommand


class Command(BinaryCommand):
    help = (
        "Create a backup of the database and file storage (runs `webnovel-backup backup`; "
        "its other flags, e.g. --json or --copy-to, are passed through)."
    )
    subcommand = "backup"

    def add_arguments(self, parser):
        parser.add_argument("--backup-dir", help="Directory to store backups (default: ./backups)")
        parser.add_argument("--skip-files", action="store_true", help="Skip file storage backup")
        parser.add_argument("--skip-db", action="store_true", help="Skip database backup")
        parser.add_argument("--models", nargs="+", help="Specific models to backup (e.g. books.Book books.Chapter)")
        parser.add_argument("--compress", action="store_true", help="Compress the backup into a .tar.gz archive")
        parser.add_argument("--include-files", action="store_true",
                            help="Include file storage (the default; with --skip-db: files only)")

    def arguments(self, options):
        argv = []
        if options.get("backup_dir"):
            argv += ["--backup-dir", str(options["backup_dir"])]
        for flag in ("skip_files", "skip_db", "compress", "include_files"):
            if options.get(flag):
                argv.append("--" + flag.replace("_", "-"))
        if options.get("models"):
            argv += ["--models"] + [str(m) for m in options["models"]]
        return argv
