package database

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// AppliedMigrations maps an app label ("books") to the names of its applied Django
// migrations (the django_migrations rows), in the order they were applied. Every app asked
// for has an entry, empty when none of its migrations is applied.
type AppliedMigrations map[string][]string

// Migrations reads the applied migrations of apps inside the snapshot, so that they match
// the rows the backup exports. ok is false when the database has no django_migrations table
// (a database Django never migrated).
func (s *Snapshot) Migrations(ctx context.Context, apps []string) (m AppliedMigrations, ok bool, err error) {
	if s.pg != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pg.tx == nil {
			return nil, false, fmt.Errorf("read django_migrations: snapshot is closed")
		}
		m, ok, err = migrationsPostgres(ctx, s.pg.tx, apps)
	} else {
		var h *sql.DB
		if h, err = s.db.snapshotHandle(s.id); err == nil {
			m, ok, err = migrationsSQLite(ctx, h, apps)
		}
		err = s.db.lockError(err, "read django_migrations", 0)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read django_migrations: %w", err)
	}
	return m, ok, nil
}

// Migrations reads the applied migrations of apps in the database as it is now. ok is false
// when it has no django_migrations table.
func (db *DB) Migrations(ctx context.Context, apps []string) (m AppliedMigrations, ok bool, err error) {
	if db.pool != nil {
		m, ok, err = migrationsPostgres(ctx, db.pool, apps)
	} else {
		m, ok, err = migrationsSQLite(ctx, db.sql, apps)
		err = db.lockError(err, "read django_migrations", 0, "django_migrations")
	}
	if err != nil {
		return nil, false, fmt.Errorf("read django_migrations of %s: %w", db.src.Redacted, err)
	}
	return m, ok, nil
}

func migrationsPostgres(ctx context.Context, q pgQuerier, apps []string) (AppliedMigrations, bool, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('django_migrations') IS NOT NULL", oneRoundTrip).Scan(&exists); err != nil {
		return nil, false, err
	}
	if !exists {
		return nil, false, nil
	}
	rows, err := q.Query(ctx, "SELECT app, name FROM django_migrations WHERE app = ANY($1) ORDER BY id", oneRoundTrip, apps)
	if err != nil {
		return nil, false, err
	}
	out := emptyMigrations(apps)
	var app, name string
	_, err = pgx.ForEachRow(rows, []any{&app, &name}, func() error {
		out[app] = append(out[app], name)
		return nil
	})
	return out, err == nil, err
}

func migrationsSQLite(ctx context.Context, h *sql.DB, apps []string) (AppliedMigrations, bool, error) {
	var n int
	if err := h.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'django_migrations'").Scan(&n); err != nil {
		return nil, false, err
	}
	if n == 0 {
		return nil, false, nil
	}
	rows, err := h.QueryContext(ctx, "SELECT app, name FROM django_migrations ORDER BY id")
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := emptyMigrations(apps)
	for rows.Next() {
		var app, name string
		if err := rows.Scan(&app, &name); err != nil {
			return nil, false, err
		}
		if _, ok := out[app]; ok {
			out[app] = append(out[app], name)
		}
	}
	return out, rows.Err() == nil, rows.Err()
}

func emptyMigrations(apps []string) AppliedMigrations {
	out := AppliedMigrations{}
	for _, a := range apps {
		out[a] = []string{}
	}
	return out
}

// MigrationDrift is how a target's applied migrations differ from a backup's record, over the
// apps the record covers. Each entry is "app.name".
type MigrationDrift struct {
	// Missing are migrations the backup's database had and the target lacks: the target's
	// schema is behind the backup's rows.
	Missing []string `json:"missing,omitempty"`
	// Newer are migrations the target has and the backup's database did not: the target is
	// ahead, which is fine while every restored column still fits.
	Newer []string `json:"newer,omitempty"`
}

// CompareMigrations compares a backup's record with the target's migrations, app by app over
// the apps in the record, keeping each side's order.
func CompareMigrations(backup, target AppliedMigrations) MigrationDrift {
	d := MigrationDrift{Missing: []string{}, Newer: []string{}}
	for _, app := range sortedApps(backup) {
		have := target[app]
		for _, name := range backup[app] {
			if !slices.Contains(have, name) {
				d.Missing = append(d.Missing, app+"."+name)
			}
		}
		for _, name := range have {
			if !slices.Contains(backup[app], name) {
				d.Newer = append(d.Newer, app+"."+name)
			}
		}
	}
	return d
}

func sortedApps(m AppliedMigrations) []string {
	apps := make([]string, 0, len(m))
	for a := range m {
		apps = append(apps, a)
	}
	slices.Sort(apps)
	return apps
}

// RecordMigrations writes applied as the applied migrations of its apps, replacing those
// apps' rows, in one transaction. It is for a scratch database whose schema this tool made
// for a backup's models: its django_migrations then says what its schema is for.
func (db *DB) RecordMigrations(ctx context.Context, applied AppliedMigrations) error {
	const ins = "INSERT INTO django_migrations (id, app, name, applied) SELECT coalesce(max(id), 0) + 1, %s FROM django_migrations"
	var err error
	if db.pool != nil {
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			return recordMigrations(applied, func(q string, args ...any) error {
				_, err := tx.Exec(ctx, q, args...)
				return err
			}, "DELETE FROM django_migrations WHERE app = $1", fmt.Sprintf(ins, "$1::text, $2::text, $3::timestamptz"), migratedAt)
		})
	} else {
		err = db.recordMigrationsSQLite(ctx, applied, "DELETE FROM django_migrations WHERE app = ?", fmt.Sprintf(ins, "?, ?, ?"))
	}
	if err != nil {
		return fmt.Errorf("record applied migrations in %s: %w", db.src.Redacted, err)
	}
	return nil
}

func (db *DB) recordMigrationsSQLite(ctx context.Context, applied AppliedMigrations, del, ins string) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	err = recordMigrations(applied, func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}, del, ins, migratedAt.Format("2006-01-02 15:04:05.000000"))
	if err != nil {
		return err
	}
	return tx.Commit()
}

// recordMigrations runs, through exec, the statements that replace each app's rows.
// at is the applied time, as the engine stores it.
func recordMigrations(applied AppliedMigrations, exec func(q string, args ...any) error, del, ins string, at any) error {
	for _, app := range sortedApps(applied) {
		if err := exec(del, app); err != nil {
			return err
		}
		for _, name := range applied[app] {
			if err := exec(ins, app, name, at); err != nil {
				return err
			}
		}
	}
	return nil
}
