package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// recordMigrations reads, in the snapshot, the applied Django migrations of the apps the
// backed-up models belong to, for the metadata: a restore compares them with its target's
// before anything changes. A database without django_migrations records none, with a warning.
func (r *backupRun) recordMigrations(ctx context.Context) error {
	apps := modelApps(r.models)
	m, ok, err := r.snap.Migrations(ctx, apps)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if !ok {
		r.migrations = nil
		w := "database has no django_migrations table: the backup records no applied migrations, so a restore can check the target's columns only"
		if !slices.Contains(r.warnings, w) {
			r.warnings = append(r.warnings, w)
		}
		r.log.Warn(w)
		return nil
	}
	r.migrations = m
	return nil
}

// modelApps lists, sorted, the app labels of models ("books" of books.chapter).
func modelApps(models []platform.Model) []string {
	var apps []string
	for _, m := range models {
		app, _, _ := strings.Cut(m.Label, ".")
		if !slices.Contains(apps, app) {
			apps = append(apps, app)
		}
	}
	slices.Sort(apps)
	return apps
}
