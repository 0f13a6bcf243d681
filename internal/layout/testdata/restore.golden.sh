#!/bin/sh
# Restore the webnovel backup backup_20241201_143022 (written by webnovel-backup 0.1.0).
# Usage: sh restore.sh [webnovel-backup restore flags, e.g. --dry-run, --force]
set -eu

# The folder holding this script, whatever the current folder. The restore runs from the
# caller's folder: the target is the caller's platform (DATABASE_URL, STORAGE_URL, or the
# defaults ./db.sqlite3 and ./media there), never the backup itself.
case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac
here=$(cd -- "$here" && pwd)

if command -v webnovel-backup >/dev/null 2>&1; then
	exec webnovel-backup restore "$here" "$@"
fi

echo "webnovel-backup is not on PATH. To restore this backup by hand, from the Django project folder:" >&2
echo "  1. Load the fixtures, in this order:" >&2
printf "     python manage.py loaddata '%s'\n" "$here"/'db_books_book.json' >&2
printf "     python manage.py loaddata '%s'\n" "$here"/'db_books_chapter.json' >&2
if [ -d "$here/files" ]; then
	echo "  2. Copy the storage files into MEDIA_ROOT:" >&2
	printf "     cp -a '%s/files/.' \"\$MEDIA_ROOT\"/\n" "$here" >&2
fi
echo "Or install webnovel-backup and run: webnovel-backup restore $here" >&2
exit 1
