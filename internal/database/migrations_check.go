package database

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// MigrationCheck compares the Django migrations a backup recorded with a database's, over the
// apps the backup covers: what a restore (and verify with a database) shows and decides on.
type MigrationCheck struct {
	// Recorded is false for a backup without the record (written by the Python command, by
	// an older webnovel-backup, or of a database without django_migrations): only the
	// target's columns are checked then.
	Recorded bool `json:"recorded"`
	// Backup is the record: app label → migration names in the order applied.
	Backup map[string][]string `json:"backup,omitempty"`
	// Compared is false when no database was compared (verify without one).
	Compared bool `json:"compared"`
	// Target is the compared database (redacted URL).
	Target string `json:"target,omitempty"`
	// Missing (the backup had, the database lacks: a restore is refused) and Newer (the
	// database has beyond the backup: a restore goes ahead when the columns fit), "app.name".
	MigrationDrift
}

// RecordedMigrations is the check of a backup's record (nil: none) before any comparison.
func RecordedMigrations(record map[string][]string) *MigrationCheck {
	return &MigrationCheck{Recorded: record != nil, Backup: record}
}

// Compare compares the record with db's applied migrations. Without a record it compares
// nothing. It changes nothing and never refuses: see Refusal.
func (mc *MigrationCheck) Compare(ctx context.Context, db *DB) error {
	if !mc.Recorded {
		return nil
	}
	target, ok, err := db.Migrations(ctx, slices.Sorted(maps.Keys(mc.Backup)))
	if err != nil {
		return err
	}
	if !ok {
		target = AppliedMigrations{} // no table: every recorded migration is missing
	}
	mc.Compared, mc.Target = true, db.src.Redacted
	mc.MigrationDrift = CompareMigrations(mc.Backup, target)
	return nil
}

// Refusal describes migrations the backup had that the compared database lacks (its schema
// is behind the backup's rows), saying what to run; "" when none.
func (mc *MigrationCheck) Refusal() string {
	if !mc.Compared || len(mc.Missing) == 0 {
		return ""
	}
	return fmt.Sprintf("target database %s lacks %d Django migration(s) the backup's database had applied: %s; run `manage.py migrate` on the target (with the platform's version the backup was taken with, or newer)",
		mc.Target, len(mc.Missing), strings.Join(mc.Missing, ", "))
}

// Warning names the migrations the compared database has beyond the backup ("" when none).
func (mc *MigrationCheck) Warning() string {
	if !mc.Compared || len(mc.Newer) == 0 {
		return ""
	}
	return fmt.Sprintf("target database %s is ahead of the backup: it has Django migration(s) the backup's database had not applied: %s; the backup's rows go into the newer schema as long as every restored column exists there",
		mc.Target, strings.Join(mc.Newer, ", "))
}

// Summary is the comparison in one line, for a dry run and verify.
func (mc *MigrationCheck) Summary() string {
	n := 0
	for _, names := range mc.Backup {
		n += len(names)
	}
	switch {
	case !mc.Recorded:
		return "not recorded in the backup (written by the Python command, or by an older version): only the target's columns are checked"
	case !mc.Compared:
		return fmt.Sprintf("%d recorded (%s)", n, recordedApps(mc.Backup))
	case len(mc.Missing) > 0:
		s := fmt.Sprintf("%d recorded; the target LACKS %s: run `manage.py migrate` on the target", n, strings.Join(mc.Missing, ", "))
		if len(mc.Newer) > 0 {
			s += "; it also has newer " + strings.Join(mc.Newer, ", ")
		}
		return s
	case len(mc.Newer) > 0:
		return fmt.Sprintf("%d recorded, all applied in the target; the target is ahead with %s", n, strings.Join(mc.Newer, ", "))
	}
	return fmt.Sprintf("%d recorded, the target has the same (%s)", n, recordedApps(mc.Backup))
}

// recordedApps is "accounts: 2, books: 1": each app with its number of migrations.
func recordedApps(m map[string][]string) string {
	var parts []string
	for _, app := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", app, len(m[app])))
	}
	return strings.Join(parts, ", ")
}
