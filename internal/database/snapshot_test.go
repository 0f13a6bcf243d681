package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// engines runs a test against the sample data on both engines.
func engines(t *testing.T, test func(t *testing.T, db *DB)) {
	t.Run("postgres", func(t *testing.T) { test(t, openT(t, samplePostgres(t))) })
	t.Run("sqlite", func(t *testing.T) { test(t, openT(t, sampleSQLite(t))) })
}

func model(t testing.TB, label string) platform.Model {
	t.Helper()
	m, ok := platform.Default.Model(label)
	if !ok {
		t.Fatalf("no model %s", label)
	}
	return m
}

// insertLanguages adds languages with the given ids, committed.
func insertLanguages(t testing.TB, db *DB, ids ...int64) {
	t.Helper()
	i := 0
	n, err := db.BulkInsert(context.Background(), "books_language", []string{"id", "code", "name"}, func() ([]any, bool) {
		if i == len(ids) {
			return nil, false
		}
		id := ids[i]
		i++
		return []any{id, fmt.Sprintf("x%d", id), fmt.Sprintf("Language %d", id)}, true
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(ids)) {
		t.Fatalf("inserted %d rows, want %d", n, len(ids))
	}
}

func exportRange(t testing.TB, db *DB, snapshot string, m platform.Model, r Range, f fixture.Format) ([]byte, int64) {
	t.Helper()
	var buf bytes.Buffer
	n, err := db.Export(context.Background(), snapshot, m, r, f, &buf)
	if err != nil {
		t.Fatalf("export %s %s: %v", m.Label, r, err)
	}
	return buf.Bytes(), n
}

func TestSnapshotHidesLaterWrites(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		lang := model(t, "books.language")
		snap, err := db.BeginSnapshot(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		insertLanguages(t, db, 100)

		ranges, err := snap.Plan(ctx, lang, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ranges) != 1 || ranges[0].Rows != 5 || ranges[0].HasLo || ranges[0].HasHi {
			t.Errorf("Plan in snapshot = %+v, want one open range of the 5 sample rows", ranges)
		}
		got, n := exportRange(t, db, snap.ID(), lang, All, fixture.Format{})
		if n != 5 || bytes.Contains(got, []byte(`"pk": 100`)) {
			t.Errorf("export in snapshot sees the later insert (%d rows):\n%s", n, got)
		}
		// Concurrent exports of the same snapshot agree.
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				var b bytes.Buffer
				_, err := db.Export(ctx, snap.ID(), lang, All, fixture.Format{}, &b)
				if err == nil && !bytes.Equal(b.Bytes(), got) {
					err = errors.New("concurrent export differs")
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}

		now, n := exportRange(t, db, "", lang, All, fixture.Format{})
		if n != 6 || !bytes.Contains(now, []byte(`"pk": 100`)) {
			t.Errorf("export without snapshot misses the insert (%d rows)", n)
		}
		id := snap.ID()
		if err := snap.Close(); err != nil {
			t.Fatal(err)
		}
		if db.src.Engine == SQLite {
			if _, err := os.Stat(id); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("snapshot copy %s still there after Close: %v", id, err)
			}
		}
		if _, err := db.Export(ctx, id, lang, All, fixture.Format{}, io.Discard); err == nil {
			t.Errorf("export in a closed snapshot succeeded")
		}
	})
}

func TestPlanRangesConcatenate(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		lang := model(t, "books.language")
		var ids []int64
		for id := int64(10); id < 200; id += 3 { // gaps between pks
			ids = append(ids, id)
		}
		insertLanguages(t, db, ids...)
		total := int64(5 + len(ids))
		snap, err := db.BeginSnapshot(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Close()
		for _, chunk := range []int{7, 1, int(total) / 2, int(total), int(total) + 1} {
			for _, f := range []fixture.Format{{Indent: 2}, {Indent: -1}, {}} {
				ranges, err := snap.Plan(ctx, lang, chunk)
				if err != nil {
					t.Fatal(err)
				}
				if want := (total + int64(chunk) - 1) / int64(chunk); int64(len(ranges)) != want {
					t.Errorf("chunk %d: %d ranges, want %d", chunk, len(ranges), want)
				}
				var (
					readers []io.Reader
					sum     int64
				)
				for i, r := range ranges {
					if r.HasLo != (i > 0) || r.HasHi != (i < len(ranges)-1) {
						t.Errorf("chunk %d: range %d is %s: only the ends are open", chunk, i, r)
					}
					if i > 0 && r.Lo != ranges[i-1].Hi+1 {
						t.Errorf("chunk %d: range %d %s does not follow %s", chunk, i, r, ranges[i-1])
					}
					b, n := exportRange(t, db, snap.ID(), lang, r, f)
					if n != r.Rows || r.Rows > int64(chunk) || r.Rows == 0 {
						t.Errorf("chunk %d: range %s planned %d rows, exported %d", chunk, r, r.Rows, n)
					}
					sum += n
					readers = append(readers, bytes.NewReader(b))
				}
				if sum != total {
					t.Errorf("chunk %d: ranges hold %d rows, want %d", chunk, sum, total)
				}
				var joined bytes.Buffer
				if _, err := fixture.Join(&joined, f, readers...); err != nil {
					t.Fatal(err)
				}
				whole := exportFile(t, db, snap.ID(), lang, f)
				if !bytes.Equal(joined.Bytes(), whole) {
					t.Errorf("chunk %d %s: joined ranges differ from one export:\n%s", chunk, f, firstDiff(joined.Bytes(), whole))
				}
			}
		}
		if _, err := snap.Plan(ctx, lang, 0); err == nil {
			t.Error("Plan with chunk 0 succeeded")
		}
	})
}

func TestSplitRanges(t *testing.T) {
	got := splitRanges(14, []int64{7}, 7)
	want := []Range{{Hi: 7, HasHi: true, Rows: 7}, {Lo: 8, HasLo: true, Rows: 7}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("splitRanges = %+v, want %+v", got, want)
	}
	if got := splitRanges(3, nil, 7); len(got) != 1 || got[0].Rows != 3 || got[0].HasLo || got[0].HasHi {
		t.Errorf("small table: %+v", got)
	}
}

func TestCheckSchema(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		warnings, err := db.CheckSchema(ctx, platform.Default.Models)
		if err != nil || len(warnings) > 0 {
			t.Fatalf("sample schema: warnings %q, error %v", warnings, err)
		}
		for _, stmt := range []string{
			`ALTER TABLE books_chapter DROP COLUMN title`,
			`DROP TABLE books_book_related_books`,
			`DROP TABLE books_bookfile`,
			`ALTER TABLE books_author ADD COLUMN nickname varchar(20) NULL`,
		} {
			if err := db.exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		warnings, err = db.CheckSchema(ctx, platform.Default.Models)
		if err == nil {
			t.Fatal("CheckSchema passed a schema with a missing column and tables")
		}
		for _, want := range []string{
			"table books_chapter is missing column title",
			"table books_book_related_books is missing",
			"table books_bookfile is missing",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if len(warnings) != 1 || !strings.Contains(warnings[0], "books_author") || !strings.Contains(warnings[0], "nickname") {
			t.Errorf("warnings %q, want one about books_author.nickname", warnings)
		}
		// Only the selected models are checked.
		if _, err := db.CheckSchema(ctx, []platform.Model{model(t, "books.language")}); err != nil {
			t.Errorf("check of books.language alone: %v", err)
		}
	})
}

// exec runs one statement (tests only).
func (db *DB) exec(ctx context.Context, stmt string) error {
	if db.pool != nil {
		_, err := db.pool.Exec(ctx, stmt)
		return err
	}
	_, err := db.sql.ExecContext(ctx, stmt)
	return err
}
