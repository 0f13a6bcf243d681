package workers

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
	"github.com/webnovel/webnovel-backup/messages"
)

// TestExportInvalidUTF8IsAWarning: SQLite keeps any bytes in a text column; a fixture holds
// only Unicode, so the export writes U+FFFD and its result warns naming model, pk and field
// (the coordinator puts result warnings into the report and the metadata).
func TestExportInvalidUTF8IsAWarning(t *testing.T) {
	path, url, redacted := emptySQLite(t)
	sqlitetest.Exec(t, path, `INSERT INTO books_language (id, code, name) VALUES
		(1, 'en', 'English'), (2, 'xx', CAST(X'41FF42' AS TEXT)), (3, 'fr', 'Français')`)

	dest := t.TempDir()
	task := &messages.Task{
		Version: messages.Version, Run: "run1", ID: "export-books.language", Kind: messages.KindExportModel, Dest: dest,
		Export: &messages.ExportTask{Database: redacted, Model: "books.language", Output: "lang.json", Whole: true, Indent: 2},
	}
	w := &Worker{cfg: Config{DatabaseURL: url}}
	defer func() {
		if w.db != nil {
			w.db.Close()
		}
	}()
	res, err := w.export(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 3 || len(res.Warnings) != 1 {
		t.Fatalf("result %+v, want 3 rows and one warning", res)
	}
	for _, want := range []string{"books.language pk 2 field name", "not valid UTF-8", "U+FFFD"} {
		if !strings.Contains(res.Warnings[0], want) {
			t.Errorf("warning %q does not name %q", res.Warnings[0], want)
		}
	}
	out, err := os.ReadFile(filepath.Join(dest, "lang.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("\"A\uFFFDB\"")) || !bytes.Contains(out, []byte("Français")) {
		t.Errorf("fixture:\n%s", out)
	}
}

// emptySQLite creates a migrated, empty SQLite database: its file, URL and redacted name.
func emptySQLite(t *testing.T) (path, url, redacted string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "db.sqlite3")
	url = "sqlite:///" + path
	db, err := database.Create(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.ApplySchema(context.Background()); err != nil {
		t.Fatal(err)
	}
	return path, url, db.Source().Redacted
}
