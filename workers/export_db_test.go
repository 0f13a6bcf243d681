package workers

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/sqlitetest"
	"github.com/webnovel/webnovel-backup/messages"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// demoDatabase fills a database of the engine with the demo platform and returns its URL.
func demoDatabase(t *testing.T, engine string) string {
	t.Helper()
	dir := t.TempDir()
	url := "sqlite:///" + filepath.Join(dir, "db.sqlite3")
	if engine == "postgres" {
		url = pgtest.URL(t)
	}
	opts := demo.DefaultOptions()
	opts.NoFiles = true
	if _, err := demo.Fill(context.Background(), url, filepath.Join(dir, "media"), opts); err != nil {
		t.Fatalf("demo fill: %v", err)
	}
	return url
}

// exportTo runs the export task e on a worker of url and returns the fixture it wrote and
// its result.
func exportTo(t *testing.T, w *Worker, e messages.ExportTask) ([]byte, *messages.Result, error) {
	t.Helper()
	dest := t.TempDir()
	e.Output = "out.json"
	task := &messages.Task{Version: messages.Version, Run: "run1", ID: "export-x", Kind: messages.KindExportModel, Dest: dest, Export: &e}
	res, err := w.export(context.Background(), task)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(filepath.Join(dest, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data, res, nil
}

// pkRanges turns planned ranges into a task's pieces.
func pkRanges(rs []database.Range) []messages.PKRange {
	out := make([]messages.PKRange, len(rs))
	for i, r := range rs {
		out[i] = messages.PKRange{Lo: r.Lo, Hi: r.Hi, HasLo: r.HasLo, HasHi: r.HasHi, Rows: r.Rows}
	}
	return out
}

// TestExportInPiecesIsByteIdentical: a model read in pieces (as planned in the run's
// snapshot, a few rows each, or cut by hand with empty pieces at both ends and inside) gives
// the fixture one read of the whole table gives, byte for byte, with the same sum, size and
// rows, on PostgreSQL and SQLite, in every layout (an empty table included); also when every
// piece outgrows the buffer budget and is read again in its turn.
func TestExportInPiecesIsByteIdentical(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			url := demoDatabase(t, engine)
			w, db := databaseWorker(t, url)
			snap, err := db.BeginSnapshot(context.Background(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer snap.Close()
			handMade := []messages.PKRange{{Hi: 0, HasHi: true}, {Lo: 1, Hi: 3, HasLo: true, HasHi: true},
				{Lo: 4, Hi: 4, HasLo: true, HasHi: true}, {Lo: 5, Hi: 1 << 40, HasLo: true, HasHi: true}, {Lo: 1<<40 + 1, HasLo: true}}
			for _, label := range []string{"books.Chapter", "books.Book", "accounts.User", "books.ChangeLog", "books.BookFile"} {
				m, _ := platform.Default.Model(label)
				planned, err := snap.PlanPieces(context.Background(), m, 3, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if len(planned) < 2 && label != "books.BookFile" {
					t.Fatalf("%s planned in %d piece(s), want several", label, len(planned))
				}
				for _, indent := range []int{0, 2, -1} {
					base := messages.ExportTask{Database: db.Source().Redacted, Snapshot: snap.ID(), Model: label, Indent: indent, Whole: true}
					want, wantRes, err := exportTo(t, w, base)
					if err != nil {
						t.Fatal(err)
					}
					for name, pieces := range map[string][]messages.PKRange{"planned": pkRanges(planned), "hand-made": handMade, "over budget": pkRanges(planned)} {
						e := base
						e.Pieces = pieces
						budget := pieceBudget
						if name == "over budget" {
							pieceBudget = 100 // every piece but the head is dropped and read again
						}
						got, res, err := exportTo(t, w, e)
						pieceBudget = budget
						if err != nil {
							t.Fatalf("%s %s indent %d: %v", label, name, indent, err)
						}
						if !bytes.Equal(got, want) {
							t.Errorf("%s in %d %s pieces, indent %d: fixture differs from one read\n got: %.200q\nwant: %.200q", label, len(pieces), name, indent, got, want)
						}
						if res.SHA256 != wantRes.SHA256 || res.Bytes != wantRes.Bytes || res.Rows != wantRes.Rows {
							t.Errorf("%s %s indent %d: result %+v, want %+v", label, name, indent, res, wantRes)
						}
					}
				}
			}
		})
	}
}

// TestExportFailingPieceNamesIt: a row that cannot be written (a decimal SQLite holds as
// text that is not a number) fails the task, whose error names the piece it is in, its
// range and the row; nothing is left at the output's name.
func TestExportFailingPieceNamesIt(t *testing.T) {
	url := demoDatabase(t, "sqlite")
	sqlitetest.Exec(t, strings.TrimPrefix(url, "sqlite:///"), `UPDATE books_book SET rating = 'not a number' WHERE id = 3`)
	w, db := databaseWorker(t, url)
	e := messages.ExportTask{Database: db.Source().Redacted, Model: "books.Book", Indent: 2, Whole: true,
		Pieces: []messages.PKRange{{Hi: 1, HasHi: true}, {Lo: 2, Hi: 3, HasLo: true, HasHi: true}, {Lo: 4, HasLo: true}}}
	dest := t.TempDir()
	e.Output = "out.json"
	task := &messages.Task{Version: messages.Version, Run: "run1", ID: "export-x", Kind: messages.KindExportModel, Dest: dest, Export: &e}
	_, err := w.export(context.Background(), task)
	if err == nil {
		t.Fatal("the export of a row that cannot be written succeeded")
	}
	for _, want := range []string{"books.Book", "piece 2 of 3 [2, 3]", "pk 3", "rating"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "out.json")); err == nil {
		t.Error("a failed export left its output")
	}
}

// databaseWorker is a worker on the database at url, and its open database (closed with t).
func databaseWorker(t *testing.T, url string) (*Worker, *database.DB) {
	t.Helper()
	w := &Worker{cfg: Config{DatabaseURL: url}}
	t.Cleanup(func() {
		if w.db != nil {
			w.db.Close()
		}
	})
	db, err := w.database(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return w, db
}
