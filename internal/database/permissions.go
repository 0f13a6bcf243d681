package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/platform"
)

// Users' user_permissions name Django's auth permissions by id, and a permission's id depends
// on the order its database ran migrations in: a backup records which permission each id it
// names was, and a restore checks that its target gives the ids the same permissions.

// permissionNamesSQL selects id and "app_label.model.codename" of the auth permissions whose
// ids the subquery (or list) ids gives.
func permissionNamesSQL(ids string) string {
	return "SELECT p.id, ct.app_label || '.' || ct.model || '.' || p.codename FROM auth_permission p " +
		"JOIN django_content_type ct ON ct.id = p.content_type_id WHERE p.id IN (" + ids + ")"
}

// ReferencedPermissions reads, in the snapshot, the auth permissions that many-to-many field
// f of m names: id → "app_label.model.codename".
func (s *Snapshot) ReferencedPermissions(ctx context.Context, m platform.Model, f platform.Field) (map[int64]string, error) {
	q := permissionNamesSQL("SELECT " + quote(f.ThroughColumns[1]) + " FROM " + quote(f.ThroughTable))
	var (
		out map[int64]string
		err error
	)
	if s.pg != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.pg.tx == nil {
			return nil, errors.New("snapshot is closed")
		}
		out, err = permissionsPostgres(ctx, s.pg.tx, q)
	} else {
		var h *sql.DB
		if h, err = s.db.snapshotHandle(s.id); err == nil {
			out, err = permissionsSQLite(ctx, h, q)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read the permissions %s field %s names: %w", m.Label, f.Name, err)
	}
	return out, nil
}

// PermissionNames reads the auth permissions of ids in the database as it is now: id →
// "app_label.model.codename" (an id it does not hold is left out).
func (db *DB) PermissionNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	if len(ids) == 0 {
		return map[int64]string{}, nil
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.FormatInt(id, 10)
	}
	q := permissionNamesSQL(strings.Join(list, ", "))
	var (
		out map[int64]string
		err error
	)
	if db.pool != nil {
		out, err = permissionsPostgres(ctx, db.pool, q)
	} else {
		out, err = permissionsSQLite(ctx, db.sql, q)
	}
	if err != nil {
		return nil, fmt.Errorf("read the auth permissions of %s: %w", db.src.Redacted, err)
	}
	return out, nil
}

func permissionsPostgres(ctx context.Context, q pgQuerier, query string) (map[int64]string, error) {
	rows, err := q.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collectPermissions(rows)
}

func permissionsSQLite(ctx context.Context, h *sql.DB, query string) (map[int64]string, error) {
	rows, err := h.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collectPermissions(rows)
}

// permissionRows is what collectPermissions needs of pgx's rows and database/sql's.
type permissionRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collectPermissions reads rows of (id, name).
func collectPermissions(rows permissionRows) (map[int64]string, error) {
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		out[id] = name
	}
	return out, rows.Err()
}
