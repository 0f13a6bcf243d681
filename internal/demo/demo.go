// Package demo generates sample webnovel platforms: a database (PostgreSQL or SQLite, with the
// schema Django creates) filled with deterministic rows, and the storage files those rows
// reference. The data covers every field type and the edge cases the reference fixtures show,
// so backups and restores of it exercise what a real platform would.
//
// Every row and file is a pure function of the options and its position: two Fills with the
// same options give identical databases and files, and rows are streamed to the database one
// at a time, so a table of a million rows costs no memory.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/webnovel/webnovel-backup/internal/database"
)

// Options shape the generated platform.
type Options struct {
	// Seed picks the data; the same seed gives the same platform.
	Seed int64
	// Users, Authors and Languages are row counts of those tables.
	Users, Authors, Languages int
	// Books is the number of books; each has ChaptersPerBook chapters.
	Books           int
	ChaptersPerBook int
	// MediaPerChapter is the number of ChapterMedia rows (and files) per chapter.
	MediaPerChapter int
	// ChangeLogsPerChapter is the number of ChangeLog rows per chapter.
	ChangeLogsPerChapter int
	// FileBytes is the approximate size of generated files. 0 writes no files at all; rows
	// still reference keys, with the sizes and checksums of 4 KiB files.
	FileBytes int
	// NoFiles writes no files; rows are the same as with files.
	NoFiles bool
	// OnlyChapters, if > 0, fills a books_chapter table of exactly that many rows spread over
	// a few books (at most 10, fewer when Books says so), with no media, change logs,
	// translation assignments or files: for benchmarks of one big table.
	OnlyChapters int
}

// DefaultOptions is a small platform that still holds every edge case: 4 books of 10
// chapters, media and change logs on each, files of a few KiB.
func DefaultOptions() Options {
	return Options{
		Seed:                 1,
		Users:                7,
		Authors:              3,
		Languages:            6,
		Books:                4,
		ChaptersPerBook:      10,
		MediaPerChapter:      1,
		ChangeLogsPerChapter: 2,
		FileBytes:            3000,
	}
}

// Summary is what Fill wrote.
type Summary struct {
	// Rows is the number of rows per table.
	Rows map[string]int64
	// Files and FileBytes count the storage files written.
	Files     int
	FileBytes int64
}

// ExpectedRows returns the number of rows Fill writes per table with these options (nil for
// invalid options).
func ExpectedRows(opts Options) map[string]int64 {
	p, err := newPlan(opts)
	if err != nil {
		return nil
	}
	return p.expectedRows()
}

// Fill writes the platform's schema and generated rows into the database at dbURL (a missing
// SQLite file is created; a PostgreSQL database must exist) and the files the rows reference
// under storageDir (content/<book>/<n>.json, images/covers/, images/avatars/, media/,
// media/books/). The platform tables must be empty. The database gets the schema and the rows
// `migrate` writes (database.ApplySchema), so user_permissions point at the same permissions
// as on a migrated site.
func Fill(ctx context.Context, dbURL, storageDir string, opts Options) (Summary, error) {
	p, err := newPlan(opts)
	if err != nil {
		return Summary{}, err
	}
	if src, err := database.ParseURL(dbURL); err == nil && src.Engine == database.SQLite {
		// The demo makes its site's folder: the database file goes in it.
		if err := os.MkdirAll(filepath.Dir(src.DSN), 0o755); err != nil {
			return Summary{}, fmt.Errorf("demo database: %w", err)
		}
	}
	db, err := database.Create(ctx, dbURL)
	if err != nil {
		return Summary{}, fmt.Errorf("demo database: %w", err)
	}
	defer db.Close()
	if err := db.ApplySchema(ctx); err != nil {
		return Summary{}, fmt.Errorf("demo schema: %w", err)
	}
	// Before anything is written: rows would collide with the generated ones half-way.
	if err := p.checkEmpty(ctx, db); err != nil {
		return Summary{}, err
	}
	sum := Summary{Rows: map[string]int64{}}
	if p.writeFiles {
		start := time.Now()
		if err := os.MkdirAll(storageDir, 0o755); err != nil {
			return sum, fmt.Errorf("demo storage: %w", err)
		}
		sum.Files, sum.FileBytes, err = p.writeStorage(ctx, storageDir)
		if err != nil {
			return sum, fmt.Errorf("demo storage %s: %w", storageDir, err)
		}
		slog.Debug("demo files written", "dir", storageDir, "files", sum.Files, "bytes", sum.FileBytes, "duration", time.Since(start))
	}
	for t := range seededBySchema {
		sum.Rows[t] = p.expectedRows()[t]
	}
	e := enc{sqlite: db.Source().Engine == database.SQLite}
	for _, t := range p.tables() {
		start := time.Now()
		n, err := db.BulkInsert(ctx, t.name, t.columns, t.rows(e))
		if err != nil {
			return sum, fmt.Errorf("demo insert %s: %w", t.name, err)
		}
		sum.Rows[t.name] = n
		slog.Debug("demo table filled", "table", t.name, "rows", n, "duration", time.Since(start))
	}
	return sum, nil
}

// checkEmpty refuses a database whose platform tables already hold rows.
func (p *plan) checkEmpty(ctx context.Context, db *database.DB) error {
	for _, t := range p.tables() {
		n, err := db.TableRows(ctx, t.name)
		if err != nil {
			return fmt.Errorf("demo: count rows of %s: %w", t.name, err)
		}
		if n > 0 {
			return fmt.Errorf("demo: table %s already has %d rows: the demo fills an empty database (create a new one, or empty the platform's tables); nothing was written", t.name, n)
		}
	}
	return nil
}
