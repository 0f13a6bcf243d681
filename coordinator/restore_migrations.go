package coordinator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// MigrationCheck compares the Django migrations a backup recorded with a database's, over the
// apps the backup covers: what a restore (and verify --database) shows and decides on.
type MigrationCheck struct {
	// Recorded is false for a backup without the record (written by the Python command, by
	// an older webnovel-backup, or of a database without django_migrations): only the
	// target's columns are checked then.
	Recorded bool `json:"recorded"`
	// Backup is the record: app label → migration names in the order applied.
	Backup map[string][]string `json:"backup,omitempty"`
	// Compared is false when no database was compared (verify without --database).
	Compared bool `json:"compared"`
	// Missing (the backup had, the database lacks: a restore is refused) and Newer (the
	// database has beyond the backup: a restore goes ahead when the columns fit), "app.name".
	database.MigrationDrift
}

// migrationReader is what the comparison needs of the target database.
type migrationReader interface {
	Migrations(ctx context.Context, apps []string) (database.AppliedMigrations, bool, error)
}

// CompareMigrations compares the backup's record in meta with db's applied migrations; db nil
// compares nothing (the record only). It changes nothing and never refuses: see Refusal.
func CompareMigrations(ctx context.Context, meta *layout.Metadata, db migrationReader) (*MigrationCheck, error) {
	mc := &MigrationCheck{Recorded: meta.Migrations != nil, Backup: meta.Migrations}
	if !mc.Recorded || db == nil {
		return mc, nil
	}
	apps := make([]string, 0, len(meta.Migrations))
	for app := range meta.Migrations {
		apps = append(apps, app)
	}
	slices.Sort(apps)
	target, ok, err := db.Migrations(ctx, apps)
	if err != nil {
		return nil, err
	}
	if !ok {
		target = database.AppliedMigrations{} // no table: every recorded migration is missing
	}
	mc.Compared = true
	mc.MigrationDrift = database.CompareMigrations(meta.Migrations, target)
	return mc, nil
}

// Refusal is the error a restore into the compared database stops with: migrations the
// backup had that the database lacks (its schema is behind the backup's rows). Nil when none.
func (mc *MigrationCheck) Refusal(target string) error {
	if !mc.Compared || len(mc.Missing) == 0 {
		return nil
	}
	return outcome.Errorf(outcome.Refused,
		"target database %s lacks %d Django migration(s) the backup's database had applied: %s; run `manage.py migrate` on the target (with the platform's version the backup was taken with, or newer) and restore again; nothing was changed",
		target, len(mc.Missing), strings.Join(mc.Missing, ", "))
}

// Warning names the migrations the database has beyond the backup ("" when none).
func (mc *MigrationCheck) Warning(target string) string {
	if !mc.Compared || len(mc.Newer) == 0 {
		return ""
	}
	return fmt.Sprintf("target database %s is ahead of the backup: it has Django migration(s) the backup's database had not applied: %s; the backup's rows are restored into the newer schema, as every restored column still exists",
		target, strings.Join(mc.Newer, ", "))
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
		return fmt.Sprintf("%d recorded; the target LACKS %s: run `manage.py migrate` on the target", n, strings.Join(mc.Missing, ", "))
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

// checkTargetMigrations compares the backup's record with the target's before anything
// changes: a target behind is refused, one ahead is a warning in the plan.
func checkTargetMigrations(ctx context.Context, db *database.DB, plan *RestorePlan) error {
	mc, err := CompareMigrations(ctx, plan.Metadata, db)
	if err != nil {
		return fmt.Errorf("compare the backup's migrations with the target's: %w", err)
	}
	plan.Migrations = mc
	if err := mc.Refusal(plan.Database); err != nil {
		return err
	}
	if w := mc.Warning(plan.Database); w != "" {
		plan.Warnings = append(plan.Warnings, w)
	}
	return nil
}
