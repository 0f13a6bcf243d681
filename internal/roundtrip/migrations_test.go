package roundtrip

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

// A platform further on than this tool's schema (a newer migration that added a nullable
// column) still round-trips: the scratch database, whose schema this tool made, is marked
// with the backup's migrations, so the restore's migration check does not refuse it.
func TestRunPlatformAheadOfToolSchema(t *testing.T) {
	const (
		mig = "INSERT INTO django_migrations (id, app, name, applied) SELECT max(id) + 1, 'books', '0002_book_subtitle', '2024-06-01 00:00:00' FROM django_migrations"
		col = "ALTER TABLE books_book ADD COLUMN subtitle varchar(200) NULL"
	)
	tests := []struct {
		name string
		url  func(t *testing.T) string
		exec func(t *testing.T, url string, stmts ...string)
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite:///" + filepath.Join(t.TempDir(), "db.sqlite3") }, execSQLite},
		{"postgres", func(t *testing.T) string { return pgtest.URL(t) }, execPostgres},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url(t)
			media := filepath.Join(t.TempDir(), "media")
			if _, err := demo.Fill(context.Background(), url, media, demo.DefaultOptions()); err != nil {
				t.Fatal(err)
			}
			tt.exec(t, url, mig, col)
			rep, err := Run(context.Background(), Options{DatabaseURL: url, StorageURL: media, Workers: 2, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Pass {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

func execSQLite(t *testing.T, url string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", url[len("sqlite:///"):])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func execPostgres(t *testing.T, url string, stmts ...string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
