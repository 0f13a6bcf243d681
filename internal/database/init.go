package database

import (
	"context"
	"fmt"
	"strings"
)

// InitSchema gives an empty database the platform's schema and the rows `manage.py migrate`
// writes, for a site without Django at hand (a restore target, a test). It refuses a database
// that has any table already: it never merges into an existing schema.
func (db *DB) InitSchema(ctx context.Context) error {
	tables, err := db.tableNames(ctx)
	if err != nil {
		return fmt.Errorf("init schema: list tables: %w", err)
	}
	if len(tables) > 0 {
		shown := tables[:min(len(tables), 5)]
		return fmt.Errorf("init schema: %s is not empty (%d tables, e.g. %s): the platform schema goes into an empty database only; nothing was changed",
			db.src.Redacted, len(tables), strings.Join(shown, ", "))
	}
	return db.ApplySchema(ctx)
}

// tableNames lists the tables of the current schema (PostgreSQL) or file (SQLite).
func (db *DB) tableNames(ctx context.Context) ([]string, error) {
	const pgQ = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1`
	const sqliteQ = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1`
	if db.pool != nil {
		rows, err := db.pool.Query(ctx, pgQ)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		return scanStrings(rows)
	}
	rows, err := db.sql.QueryContext(ctx, sqliteQ)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanStrings(rows)
}

// scanStrings reads one text column from either driver's rows.
func scanStrings(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}) ([]string, error) {
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
