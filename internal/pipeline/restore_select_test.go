package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// dumpAll exports every model of the platform (many-to-many lists included), one line per
// row, as a backup writes them.
func dumpAll(t *testing.T, url string) map[string][]string {
	t.Helper()
	db, err := database.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	for _, m := range platform.Default.Models {
		var buf bytes.Buffer
		if _, err := db.Export(context.Background(), "", m, database.All, fixture.Format{}, &buf); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(buf.String(), "\n") {
			if l = strings.TrimSuffix(l, ","); l != "" {
				out[m.Label] = append(out[m.Label], l)
			}
		}
	}
	return out
}

// assertSameRows fails with the rows that differ between two dumps.
func assertSameRows(t *testing.T, want, got map[string][]string) {
	t.Helper()
	for _, m := range platform.Default.Models {
		w, g := want[m.Label], got[m.Label]
		if slices.Equal(w, g) {
			continue
		}
		var lost, extra []string
		for _, l := range w {
			if !slices.Contains(g, l) {
				lost = append(lost, l)
			}
		}
		for _, l := range g {
			if !slices.Contains(w, l) {
				extra = append(extra, l)
			}
		}
		t.Errorf("%s: %d rows, want %d\nmissing or different: %.3q\nunexpected: %.3q", m.Label, len(g), len(w), lost, extra)
	}
}

// execSQL runs statements in one transaction on a platform database of either engine.
func execSQL(t *testing.T, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	src, err := database.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	if src.Engine == database.Postgres {
		conn, err := pgx.Connect(ctx, src.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := sql.Open("sqlite", src.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// queryText returns the first column of a query's rows as text.
func queryText(t *testing.T, url, q string) []string {
	t.Helper()
	ctx := context.Background()
	src, err := database.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if src.Engine == database.Postgres {
		conn, err := pgx.Connect(ctx, src.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(vals[0]))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	db, err := sql.Open("sqlite", src.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// deleteBookCascade deletes a book as Django's delete() does: its dependants in order, the
// SET_NULL references to its chapters cleared, its many-to-many links in both directions.
func deleteBookCascade(t *testing.T, url string, book int) {
	t.Helper()
	chapters := fmt.Sprintf("(SELECT id FROM books_chapter WHERE book_id = %d)", book)
	execSQL(t, url,
		fmt.Sprintf("DELETE FROM books_book_related_books WHERE from_book_id = %d OR to_book_id = %d", book, book),
		"DELETE FROM books_changelog WHERE chapter_id IN "+chapters,
		"DELETE FROM accounts_translationassignment WHERE chapter_id IN "+chapters,
		"DELETE FROM books_chaptermedia WHERE chapter_id IN "+chapters,
		fmt.Sprintf("UPDATE books_chapter SET translated_from_id = NULL WHERE translated_from_id IN %s AND book_id <> %d", chapters, book),
		fmt.Sprintf("DELETE FROM books_chapter WHERE book_id = %d", book),
		fmt.Sprintf("DELETE FROM books_bookfile WHERE book_id = %d", book),
		fmt.Sprintf("DELETE FROM accounts_bookcollaborator WHERE book_id = %d", book),
		fmt.Sprintf("DELETE FROM books_book WHERE id = %d", book),
	)
}

// deleteChapterCascade deletes one chapter as Django's delete() does.
func deleteChapterCascade(t *testing.T, url, chapter string) {
	t.Helper()
	execSQL(t, url,
		"DELETE FROM books_changelog WHERE chapter_id = "+chapter,
		"DELETE FROM accounts_translationassignment WHERE chapter_id = "+chapter,
		"DELETE FROM books_chaptermedia WHERE chapter_id = "+chapter,
		"UPDATE books_chapter SET translated_from_id = NULL WHERE translated_from_id = "+chapter,
		"DELETE FROM books_chapter WHERE id = "+chapter,
	)
}

func restoreSelected(t *testing.T, target platformFixture, backup string, sel coordinator.SelectOptions, dry bool) (*coordinator.RestoreReport, error) {
	t.Helper()
	return restoreInto(t, target, coordinator.RestoreOptions{Source: backup, Select: &sel, DryRun: dry})
}

func removeStorageFile(t *testing.T, dir, key string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
}

var engines = []string{database.SQLite, database.Postgres}

// A book deleted through the cascade comes back exactly, by slug, with its files: every row
// of the database (other books edited since the backup included) is as it was before the
// delete, and the storage too.
func TestRestoreBookAfterCascadeDelete(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			p := filledPlatform(t, engine, demo.DefaultOptions())
			backup := backupOf(t, p, false)
			// Edited after the backup: a selective restore must not put the old title back.
			execSQL(t, p.dbURL, "UPDATE books_book SET title = 'edited after the backup' WHERE id = 1")
			before, files := dumpAll(t, p.dbURL), treeFiles(t, p.storage)
			const book = 2
			slug := queryText(t, p.dbURL, "SELECT slug FROM books_book WHERE id = 2")[0]
			named := queryText(t, p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 2")
			if len(queryText(t, p.dbURL, "SELECT id FROM books_chapter WHERE translated_from_id IN (SELECT id FROM books_chapter WHERE book_id = 2) AND book_id <> 2")) == 0 {
				t.Fatal("the demo has no chapter of another book translated from book 2: the test needs one")
			}
			deleteBookCascade(t, p.dbURL, book)
			for _, key := range named {
				removeStorageFile(t, p.storage, key)
			}
			if engine == database.Postgres {
				// A target whose sequences are behind the restored ids.
				execSQL(t, p.dbURL, "SELECT setval(pg_get_serial_sequence('books_chapter', 'id'), 1)")
			}

			deleted := dumpAll(t, p.dbURL)
			rep, err := restoreSelected(t, p, backup, coordinator.SelectOptions{Books: []string{slug}}, true)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if got := subsetModel(rep.Plan.Subset, "books.chapter"); got.Selected != 10 || got.Relinks == 0 {
				t.Fatalf("dry run graph for books.chapter: %+v", got)
			}
			assertSameRows(t, deleted, dumpAll(t, p.dbURL)) // the dry run changed nothing
			if _, err := restoreSelected(t, p, backup, coordinator.SelectOptions{Books: []string{slug}}, false); err != nil {
				t.Fatal(err)
			}
			assertSameRows(t, before, dumpAll(t, p.dbURL))
			assertSameTree(t, treeFiles(t, p.storage), files)
			if engine == database.Postgres {
				next := queryText(t, p.dbURL, "SELECT nextval(pg_get_serial_sequence('books_chapter', 'id')) > (SELECT max(id) FROM books_chapter)")
				if next[0] != "true" {
					t.Fatal("the chapter sequence was not moved past the restored ids")
				}
			}
		})
	}
}

func subsetModel(s *coordinator.SubsetPlan, label string) coordinator.SubsetModel {
	for _, m := range s.Models {
		if m.Label == label {
			return m
		}
	}
	return coordinator.SubsetModel{}
}

// --select works the same for any model: a chapter deleted through the cascade comes back
// with its media, change logs and translation assignments, and the chapters translated from
// it point at it again.
func TestRestoreSelectChapter(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			p := filledPlatform(t, engine, demo.DefaultOptions())
			backup := backupOf(t, p, false)
			before := dumpAll(t, p.dbURL)
			chapter := queryText(t, p.dbURL, "SELECT min(translated_from_id) FROM books_chapter")[0]
			deleteChapterCascade(t, p.dbURL, chapter)
			if _, err := restoreSelected(t, p, backup, coordinator.SelectOptions{Rows: []string{"books.Chapter=" + chapter}}, false); err != nil {
				t.Fatal(err)
			}
			assertSameRows(t, before, dumpAll(t, p.dbURL))
		})
	}
}

// Into an empty database, a book brings what it needs: its author, language, owner,
// collaborators' users, linked books; every row written is the source's, and the foreign
// keys hold (the restore checks them before its commit).
func TestRestoreBookIntoEmptyDatabase(t *testing.T) {
	p := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	backup := backupOf(t, p, false)
	target := emptyTarget(t, database.Postgres)
	if _, err := restoreSelected(t, target, backup, coordinator.SelectOptions{Books: []string{"2"}}, false); err != nil {
		t.Fatal(err)
	}
	src, got := dumpAll(t, p.dbURL), dumpAll(t, target.dbURL)
	for label, rows := range got {
		for _, r := range rows {
			if label != "books.book" && !slices.Contains(src[label], r) {
				t.Errorf("%s: restored row differs from the source: %.200s", label, r)
			}
		}
	}
	want := queryText(t, p.dbURL, "SELECT count(*) FROM books_chapter WHERE book_id = 2")[0]
	if n := queryText(t, target.dbURL, "SELECT count(*) FROM books_chapter WHERE book_id = 2")[0]; n != want {
		t.Fatalf("%s chapters of book 2 restored, want %s", n, want)
	}
	for _, table := range []string{"books_author", "books_language", "accounts_bookcollaborator"} {
		if n := queryText(t, target.dbURL, "SELECT count(*) FROM "+table)[0]; n == "0" {
			t.Errorf("%s: nothing restored", table)
		}
	}
}

// A row that exists with other values is a conflict: refused by default (exit 2, listed,
// nothing changed), kept, or replaced.
func TestRestoreSelectConflicts(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			p := filledPlatform(t, engine, demo.DefaultOptions())
			backup := backupOf(t, p, false)
			chapter := queryText(t, p.dbURL, "SELECT min(id) FROM books_chapter WHERE book_id = 1")[0]
			log := queryText(t, p.dbURL, "SELECT min(id) FROM books_changelog WHERE chapter_id IN (SELECT id FROM books_chapter WHERE book_id = 1)")[0]
			title := queryText(t, p.dbURL, "SELECT title FROM books_chapter WHERE id = "+chapter)[0]
			// Cleared by an edit, not by a delete (the chapter it named is still there): stays.
			unlinked := "SELECT count(*) FROM books_chapter WHERE book_id <> 1 AND translated_from_id IS NULL"
			book1 := "(SELECT id FROM books_chapter WHERE book_id = 1)"
			execSQL(t, p.dbURL, "UPDATE books_chapter SET title = 'edited live' WHERE id = "+chapter, "DELETE FROM books_changelog WHERE id = "+log,
				"UPDATE books_chapter SET translated_from_id = NULL WHERE book_id <> 1 AND translated_from_id IN "+book1)
			nulls := queryText(t, p.dbURL, unlinked)[0]
			content := filepath.Join(p.storage, filepath.FromSlash(queryText(t, p.dbURL, "SELECT content_file FROM books_chapter WHERE id = "+chapter)[0]))
			original, err := os.ReadFile(content)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(content, []byte("edited live"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Another chapter's row is as in the backup, but its file was edited since: a
			// conflict of the storage, settled as the rows' are.
			otherKey := queryText(t, p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 1 AND id <> "+chapter+" ORDER BY id LIMIT 1")[0]
			other := filepath.Join(p.storage, filepath.FromSlash(otherKey))
			otherOriginal, err := os.ReadFile(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(other, []byte("other edited live"), 0o644); err != nil {
				t.Fatal(err)
			}
			fileIs := func(want, wantOther string) {
				t.Helper()
				for f, w := range map[string]string{content: want, other: wantOther} {
					if got, _ := os.ReadFile(f); string(got) != w {
						t.Fatalf("%s holds %.40q, want %.40q", f, got, w)
					}
				}
			}
			edited := dumpAll(t, p.dbURL)
			sel := func(mode string) coordinator.SelectOptions {
				return coordinator.SelectOptions{Books: []string{"1"}, OnConflict: mode}
			}

			rep, err := restoreSelected(t, p, backup, sel(""), true)
			if err != nil {
				t.Fatal(err)
			}
			cs := rep.Plan.Subset.Conflicts
			if len(cs) != 1 || cs[0].Model != "books.chapter" || fmt.Sprint(cs[0].PK) != chapter || !slices.Equal(cs[0].Fields, []string{"title"}) {
				t.Fatalf("dry run conflicts: %+v", cs)
			}
			if fc := rep.Plan.Subset.FileConflicts; !slices.Contains(fc, otherKey) || len(fc) != 2 {
				t.Fatalf("dry run file conflicts %q: want %s and the conflicting row's file", fc, otherKey)
			}
			_, err = restoreSelected(t, p, backup, sel(coordinator.ConflictRefuse), false)
			if outcome.Of(err).Code != 2 || !strings.Contains(fmt.Sprint(err), "books.chapter pk "+chapter+" (title)") || !strings.Contains(fmt.Sprint(err), "file "+otherKey) {
				t.Fatalf("refuse: exit %d, %v", outcome.Of(err).Code, err)
			}
			assertSameRows(t, edited, dumpAll(t, p.dbURL))
			fileIs("edited live", "other edited live")

			rep, err = restoreSelected(t, p, backup, sel(coordinator.ConflictKeep), false)
			if err != nil {
				t.Fatal(err)
			}
			if got := queryText(t, p.dbURL, "SELECT title FROM books_chapter WHERE id = "+chapter)[0]; got != "edited live" {
				t.Fatalf("keep: title %q", got)
			}
			// The kept row's file and the file edited since the backup keep their live content.
			fileIs("edited live", "other edited live")
			if !hasWarning(rep.Plan.Warnings, otherKey, "kept") {
				t.Errorf("keep: no warning names %s: %q", otherKey, rep.Plan.Warnings)
			}
			if n := queryText(t, p.dbURL, "SELECT count(*) FROM books_changelog WHERE id = "+log)[0]; n != "1" {
				t.Fatal("keep: the deleted change log was not restored")
			}
			if _, err := restoreSelected(t, p, backup, sel(coordinator.ConflictReplace), false); err != nil {
				t.Fatal(err)
			}
			if got := queryText(t, p.dbURL, "SELECT title FROM books_chapter WHERE id = "+chapter)[0]; got != title {
				t.Fatalf("replace: title %q, want %q", got, title)
			}
			fileIs(string(original), string(otherOriginal))
			if got := queryText(t, p.dbURL, unlinked)[0]; got != nulls {
				t.Fatalf("references cleared by an edit were set back: %s NULL, want %s", got, nulls)
			}
		})
	}
}

// An unknown slug, pk or model is a usage error naming what was given; nothing changes.
func TestRestoreSelectUnknown(t *testing.T) {
	p := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	backup := backupOf(t, p, false)
	before := dumpAll(t, p.dbURL)
	tests := []struct {
		sel  coordinator.SelectOptions
		want string
	}{
		{coordinator.SelectOptions{Books: []string{"no-such-book"}}, "--book no-such-book"},
		{coordinator.SelectOptions{Books: []string{"999"}}, "--book 999: the backup holds no books.book with pk 999"},
		{coordinator.SelectOptions{Rows: []string{"books.Chapter=99999"}}, "--select books.Chapter=99999"},
		{coordinator.SelectOptions{Rows: []string{"books.Nope=1"}}, "unknown model"},
		{coordinator.SelectOptions{Rows: []string{"books.Chapter"}}, "app.Model=PK"},
		{coordinator.SelectOptions{Books: []string{"1"}, OnConflict: "merge"}, "--on-conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := restoreSelected(t, p, backup, tt.sel, false)
			if outcome.Of(err).Code != 2 || !strings.Contains(fmt.Sprint(err), tt.want) {
				t.Fatalf("exit %d, %v; want exit 2 naming %q", outcome.Of(err).Code, err, tt.want)
			}
		})
	}
	assertSameRows(t, before, dumpAll(t, p.dbURL))
}

// A book comes back from an object-store backup on S3 too: its files are read from their
// objects.
func TestRestoreBookFromObjectStore(t *testing.T) {
	s3 := s3test.Start(t, nil, "backups")
	c := newS3Chain(t, s3, "nightly")
	name := c.back(t)
	before, files := dumpAll(t, c.p.dbURL), treeFiles(t, c.p.storage)
	for _, key := range queryText(t, c.p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 3") {
		removeStorageFile(t, c.p.storage, key)
	}
	deleteBookCascade(t, c.p.dbURL, 3)
	reads := workerReads(t)
	rep, err := restoreSelected(t, c.p, s3.URL("backups", "nightly/"+name, ""), coordinator.SelectOptions{Books: []string{"3"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files == 0 {
		t.Fatal("no file restored")
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("the workers read %d objects: want each file linked from the check pass's stage", n)
	}
	assertSameRows(t, before, dumpAll(t, c.p.dbURL))
	assertSameTree(t, treeFiles(t, c.p.storage), files)

	// A corrupt object of the book refuses the restore before anything changes.
	key := queryText(t, c.p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 3")[0]
	content := files[key]
	sum := sha256.Sum256(content)
	obj := layout.ObjectKey(hex.EncodeToString(sum[:]))
	s3.Put(t, "backups", "nightly/"+obj, append([]byte{content[0] ^ 0xff}, content[1:]...))
	for _, k := range queryText(t, c.p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 3") {
		removeStorageFile(t, c.p.storage, k)
	}
	deleteBookCascade(t, c.p.dbURL, 3)
	rows, tree := dumpAll(t, c.p.dbURL), treeFiles(t, c.p.storage)
	_, err = restoreSelected(t, c.p, s3.URL("backups", "nightly/"+name, ""), coordinator.SelectOptions{Books: []string{"3"}}, false)
	if err == nil || !strings.Contains(err.Error(), obj) {
		t.Fatalf("restore of a book with a corrupt object: %v, want a refusal naming %s", err, obj)
	}
	assertSameRows(t, rows, dumpAll(t, c.p.dbURL))
	assertSameTree(t, treeFiles(t, c.p.storage), tree)
}

// The files a selective restore uses are checked before anything changes: a corrupt one is
// refused, naming it; a file the backup lacks is a warning naming it.
func TestRestoreSelectChecksFiles(t *testing.T) {
	p := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	backup := backupOf(t, p, false)
	key := queryText(t, p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 2 ORDER BY id")[0]
	deleteBookCascade(t, p.dbURL, 2)
	deleted := dumpAll(t, p.dbURL)

	corrupt := copyTree(t, backup)
	flipByte(t, filepath.Join(corrupt, "files", filepath.FromSlash(key)))
	_, err := restoreSelected(t, p, corrupt, coordinator.SelectOptions{Books: []string{"2"}}, false)
	if err == nil || !strings.Contains(err.Error(), key+" is corrupt") {
		t.Fatalf("corrupt file: %v", err)
	}
	assertSameRows(t, deleted, dumpAll(t, p.dbURL))

	lost := copyTree(t, backup)
	if err := os.Remove(filepath.Join(lost, "files", filepath.FromSlash(key))); err != nil {
		t.Fatal(err)
	}
	resign(t, lost)
	rep, err := restoreSelected(t, p, lost, coordinator.SelectOptions{Books: []string{"2"}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Plan.Warnings, func(w string) bool { return strings.Contains(w, key) && strings.Contains(w, "not in the backup") }) {
		t.Fatalf("no warning names the lost file %s: %q", key, rep.Plan.Warnings)
	}
}
