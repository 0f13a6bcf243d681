package database

// SKELETON: signatures agreed between packages; bodies are being written.

import (
	"context"
	"errors"
	"io"

	"github.com/webnovel/webnovel-backup/platform"
)

// LoadFixture is one model's fixture to load.
type LoadFixture struct {
	Model platform.Model
	// Open returns the fixture file's content (Django JSON: indented, compact or lines).
	Open func() (io.ReadCloser, error)
}

// LoadOptions shape a load.
type LoadOptions struct {
	// Merge upserts by primary key, as loaddata does, instead of replacing the models' rows.
	Merge bool
}

// LoadedModel is one model's outcome.
type LoadedModel struct {
	Label string
	// Rows loaded from the fixture; Before is the table's row count before the load.
	Rows, Before int64
}

// Load loads fixtures in one transaction: by default it empties the models' tables (auto M2M
// tables included) and loads the fixtures; with Merge it upserts by pk. Foreign-key checks are
// deferred to commit, so any row order and self references load; sequences are set past the
// loaded ids. Any failure leaves the database exactly as before and names the model, the pk
// and the cause.
func (db *DB) Load(ctx context.Context, fixtures []LoadFixture, o LoadOptions) ([]LoadedModel, error) {
	return nil, errors.New("not implemented")
}

// CountRows returns each model's current row count (for a restore's plan).
func (db *DB) CountRows(ctx context.Context, models []platform.Model) (map[string]int64, error) {
	return nil, errors.New("not implemented")
}
