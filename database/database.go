// Package database reads and writes the platform's database, PostgreSQL (pgx) or SQLite
// (modernc.org/sqlite): URL parsing, schema checks against the model description, one
// consistent snapshot for a whole run, fixture export by primary-key range, and bulk inserts.
package database

// SKELETON: signatures agreed between packages; bodies are being written.

import (
	"context"
	"errors"
	"io"

	"github.com/webnovel/webnovel-backup/fixture"
	"github.com/webnovel/webnovel-backup/platform"
)

// Engines.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// Source is a parsed dj-database-url.
type Source struct {
	Engine string // Postgres or SQLite
	// DSN is what the driver opens: the postgres URL, or the SQLite file path.
	DSN string
	// Redacted is the URL with any password replaced by "xxxxx", safe for logs and metadata.
	Redacted string
}

// DjangoEngine is the ENGINE setting Django uses for the source ("django.db.backends.postgresql").
func (s Source) DjangoEngine() string {
	if s.Engine == Postgres {
		return "django.db.backends.postgresql"
	}
	return "django.db.backends.sqlite3"
}

// ParseURL parses postgres://user:pass@host:port/db (also postgresql://, pgsql://),
// sqlite:////absolute/path.sqlite3 and sqlite:///relative.sqlite3.
func ParseURL(url string) (Source, error) { return Source{}, errors.New("not implemented") }

// DB is an open platform database.
type DB struct{}

// Open connects to the database. A database that does not exist (a missing SQLite file, an
// unknown PostgreSQL database) is an error, never created.
func Open(ctx context.Context, url string) (*DB, error) { return nil, errors.New("not implemented") }

// Create opens the database, creating an empty SQLite file when missing (PostgreSQL databases
// must exist). Used by the demo generator and scratch restores.
func Create(ctx context.Context, url string) (*DB, error) { return nil, errors.New("not implemented") }

// Source returns what the DB was opened from.
func (db *DB) Source() Source { return Source{} }

// Close releases connections.
func (db *DB) Close() error { return nil }

// ApplySchema creates the platform's tables (platform.SchemaPostgres / SchemaSQLite) when
// accounts_user does not exist yet, and is a no-op otherwise.
func (db *DB) ApplySchema(ctx context.Context) error { return errors.New("not implemented") }

// BulkInsert inserts rows into table in one transaction (PostgreSQL COPY, SQLite prepared
// statements). next returns the next row's values in columns order (nil for NULL; int64, string,
// bool, float64, time.Time or []byte), and false when done. Sequences/AUTOINCREMENT are moved
// past the largest id afterwards.
func (db *DB) BulkInsert(ctx context.Context, table string, columns []string, next func() ([]any, bool)) (int64, error) {
	return 0, errors.New("not implemented")
}

// CheckSchema compares the live schema with the models: a missing table or column is an error
// naming it; a column the description does not know is returned as a warning (it is not
// exported; a restore leaves it to its default).
func (db *DB) CheckSchema(ctx context.Context, models []platform.Model) (warnings []string, err error) {
	return nil, errors.New("not implemented")
}

// Range is a primary-key range [Lo, Hi]; HasLo/HasHi false means unbounded on that side.
type Range struct {
	Lo, Hi       int64
	HasLo, HasHi bool
	// Rows is the number of rows the planner counted in the range.
	Rows int64
}

// Snapshot is one consistent read view of the database, shared by every export of a run.
type Snapshot struct{}

// BeginSnapshot opens the run's snapshot: PostgreSQL a REPEATABLE READ transaction and
// pg_export_snapshot(), held until Close; SQLite a VACUUM INTO copy in dir, removed on Close.
func (db *DB) BeginSnapshot(ctx context.Context, dir string) (*Snapshot, error) {
	return nil, errors.New("not implemented")
}

// ID is what export tasks carry: the exported snapshot name, or the SQLite copy's path.
func (s *Snapshot) ID() string { return "" }

// Plan splits a model's rows into pk ranges of at most chunkRows rows each (one open-ended
// range when the table is small), counted inside the snapshot.
func (s *Snapshot) Plan(ctx context.Context, m platform.Model, chunkRows int) ([]Range, error) {
	return nil, errors.New("not implemented")
}

// Close ends the snapshot.
func (s *Snapshot) Close() error { return nil }

// Export writes the model's rows in r, in pk order, read in snapshot snapshotID, as fixture
// objects in format f separated by f.Sep() and without the surrounding brackets (a chunk). It
// returns the number of rows written. Memory does not grow with the number of rows.
func (db *DB) Export(ctx context.Context, snapshotID string, m platform.Model, r Range, f fixture.Format, w io.Writer) (int64, error) {
	return 0, errors.New("not implemented")
}
