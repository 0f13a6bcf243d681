package coordinator

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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

// noteOutsideReferences deals, in the snapshot, with each backed-up field that references rows
// of a model outside the platform's description, which no backup holds (the platform's own
// backups never did), so the references point at whatever the target holds under those ids.
// Permissions, which every migrated database holds, are recorded by id for the restore to
// check (recordPermissions); any other such field (Django's auth groups) is a warning with
// its count, when it holds any.
func (r *backupRun) noteOutsideReferences(ctx context.Context) error {
	for _, m := range r.models {
		for _, f := range m.Fields {
			if f.To == permissionModel && f.IsManyToMany() {
				if err := r.recordPermissions(ctx, m, f); err != nil {
					return err
				}
				continue
			}
			if f.To == "" {
				continue
			}
			if _, known := platform.Default.Model(f.To); known {
				continue
			}
			n, err := r.snap.CountReferences(ctx, m, f)
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if n == 0 {
				continue
			}
			w := fmt.Sprintf("%s field %s holds %d references to %s rows, which no backup holds (only the platform's own models are backed up): a restore keeps the ids, so the target must hold the same %s rows", m.Label, f.Name, n, f.To, f.To)
			if !slices.Contains(r.warnings, w) {
				r.warnings = append(r.warnings, w)
				r.log.Warn(w)
			}
		}
	}
	return nil
}

// permissionModel is Django's auth permission, which users' user_permissions name by id.
const permissionModel = "auth.permission"

// recordPermissions reads, in the snapshot, which permission each id field f of m names is,
// for the metadata: a restore checks that its target gives each id the same one.
func (r *backupRun) recordPermissions(ctx context.Context, m platform.Model, f platform.Field) error {
	names, err := r.snap.ReferencedPermissions(ctx, m, f)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if len(names) > 0 && r.permissions == nil {
		r.permissions = make(map[string]string, len(names))
	}
	for id, name := range names {
		r.permissions[strconv.FormatInt(id, 10)] = name
	}
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
