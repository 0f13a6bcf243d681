package database

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const testdata = "../platform/testdata"

// samplePostgres returns the URL of a new database holding the sample data.
func samplePostgres(t testing.TB) string {
	t.Helper()
	url := pgtest.URL(t)
	// The schema alone: the sample data holds the rows migrate writes.
	execScript(t, url, platform.SchemaPostgres)
	data, err := os.ReadFile(filepath.Join(testdata, "sample-data.postgres.sql"))
	if err != nil {
		t.Fatal(err)
	}
	execScript(t, url, string(data))
	return url
}

// execScript runs SQL on a connection of its own (pg_dump scripts change search_path).
func execScript(t testing.TB, url, script string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, script); err != nil {
		t.Fatalf("exec script: %v", err)
	}
}

// sampleSQLite returns the URL of a copy of the sample SQLite database.
func sampleSQLite(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdata, "sample.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return "sqlite:///" + path
}

func openT(t testing.TB, url string) *DB {
	t.Helper()
	db, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// exportFile exports a whole model as a complete fixture file.
func exportFile(t testing.TB, db *DB, snapshot string, m platform.Model, f fixture.Format) []byte {
	t.Helper()
	var chunk bytes.Buffer
	n, err := db.Export(context.Background(), snapshot, m, All, f, &chunk)
	if err != nil {
		t.Fatalf("export %s: %v", m.Label, err)
	}
	if (n == 0) != (chunk.Len() == 0) {
		t.Errorf("export %s: %d rows but %d bytes", m.Label, n, chunk.Len())
	}
	var file bytes.Buffer
	if _, err := fixture.Join(&file, f, &chunk); err != nil {
		t.Fatal(err)
	}
	return file.Bytes()
}

func compareGolden(t *testing.T, got []byte, golden string) {
	t.Helper()
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n%s", golden, firstDiff(got, want))
	}
}

// firstDiff shows where two outputs part.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-120)
	return "got:  ..." + string(got[lo:min(len(got), i+120)]) + "\nwant: ..." + string(want[lo:min(len(want), i+120)])
}

func TestExportGoldenPostgres(t *testing.T) {
	db := openT(t, samplePostgres(t))
	for _, m := range platform.Default.Models {
		t.Run(m.Label, func(t *testing.T) {
			compareGolden(t, exportFile(t, db, "", m, fixture.Format{Indent: 2}),
				filepath.Join(testdata, "sample-fixtures", m.FixtureName()))
			compareGolden(t, exportFile(t, db, "", m, fixture.Format{Indent: -1}),
				filepath.Join(testdata, "sample-fixtures", "compact", m.FixtureName()))
		})
	}
}

func TestExportGoldenSQLite(t *testing.T) {
	db := openT(t, sampleSQLite(t))
	for _, m := range platform.Default.Models {
		t.Run(m.Label, func(t *testing.T) {
			compareGolden(t, exportFile(t, db, "", m, fixture.Format{Indent: 2}),
				filepath.Join(testdata, "sample-fixtures", "sqlite", m.FixtureName()))
		})
	}
}

// TestExportLinesLayout checks the default layout: one compact object per line, which is the
// compact fixture's objects joined by ",\n".
func TestExportLinesLayout(t *testing.T) {
	db := openT(t, sampleSQLite(t))
	m, _ := platform.Default.Model("books.chapter")
	got := exportFile(t, db, "", m, fixture.Format{})
	compact := exportFile(t, db, "", m, fixture.Format{Indent: -1})
	want := "[\n" + strings.ReplaceAll(string(compact[1:len(compact)-1]), `}}, {"model"`, "}},\n{\"model\"") + "\n]\n"
	if string(got) != want {
		t.Errorf("lines layout:\n%s", firstDiff(got, []byte(want)))
	}
	if n := strings.Count(string(got), "\n"); n != 3+5 {
		t.Errorf("%d lines, want one per chapter (6) plus brackets", n)
	}
	_ = io.Discard
}

// TestDeepJSONRoundTrip: a jsonb value nested deeper than any JSON parser's usual limit, which
// PostgreSQL accepts, backs up and loads back unchanged.
func TestDeepJSONRoundTrip(t *testing.T) {
	const depth = 6000 // an object and an array a step: 12,000 levels
	deep := strings.Repeat(`{"a": [`, depth) + "1" + strings.Repeat("]}", depth)
	url := samplePostgres(t)
	execScript(t, url, "UPDATE books_book SET metadata = '"+deep+"'::jsonb WHERE id = 1")
	db := openT(t, url)
	m, _ := platform.Default.Model("books.book")
	data := exportFile(t, db, "", m, fixture.Format{})
	if bytes.Count(data, []byte(`"a"`)) < depth {
		t.Fatal("the exported fixture lacks the nested value")
	}
	execScript(t, url, "UPDATE books_book SET metadata = '{}'::jsonb WHERE id = 1")
	if _, err := db.Load(context.Background(), []LoadFixture{bytesFixture(m, data)}, LoadOptions{Merge: true}); err != nil {
		t.Fatalf("load: %v", err)
	}
	var same bool
	if err := db.pool.QueryRow(context.Background(), "SELECT metadata = $1::jsonb FROM books_book WHERE id = 1", deep).Scan(&same); err != nil || !same {
		t.Errorf("metadata after the load: same %v, err %v", same, err)
	}
}
