package demo

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// fillSQLite fills a new SQLite file and storage folder.
func fillSQLite(t *testing.T, o Options) (dbPath, storage string, sum Summary) {
	t.Helper()
	dir := t.TempDir()
	dbPath, storage = filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media")
	sum, err := Fill(context.Background(), "sqlite:///"+dbPath, storage, o)
	if err != nil {
		t.Fatal(err)
	}
	return dbPath, storage, sum
}

func openSQL(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryInt(t *testing.T, db *sql.DB, q string) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n.Int64
}

// checkDB asserts row counts and edge cases through SQL, the same on both engines.
func checkDB(t *testing.T, db *sql.DB, o Options, sum Summary) {
	t.Helper()
	want := ExpectedRows(o)
	if !reflect.DeepEqual(sum.Rows, want) {
		t.Errorf("Summary.Rows = %v, want %v", sum.Rows, want)
	}
	for table, n := range want {
		if got := queryInt(t, db, "SELECT count(*) FROM "+table); got != n {
			t.Errorf("%s holds %d rows, want %d", table, got, n)
		}
	}
	checks := []struct {
		what, query string
	}{
		{"NULL rating", "SELECT count(*) FROM books_book WHERE rating IS NULL"},
		{"video size_bytes over 2^31", "SELECT count(*) FROM books_chaptermedia WHERE media_type = 'video' AND size_bytes > 2147483648"},
		{"translated_from pointing to a higher id", "SELECT count(*) FROM books_chapter WHERE translated_from_id > id"},
		{"translated_from pointing to a lower id", "SELECT count(*) FROM books_chapter WHERE translated_from_id < id"},
		{"related books both ways", "SELECT count(*) FROM books_book_related_books a JOIN books_book_related_books b ON a.from_book_id = b.to_book_id AND a.to_book_id = b.from_book_id"},
		{"user permissions", "SELECT count(*) FROM accounts_user_user_permissions u JOIN auth_permission p ON p.id = u.permission_id"},
		{"NULL diff", "SELECT count(*) FROM books_changelog WHERE diff IS NULL"},
		{"NULL time_spent", "SELECT count(*) FROM accounts_translationassignment WHERE time_spent IS NULL"},
		{"leap day", "SELECT count(*) FROM accounts_translationassignment WHERE due_date = '2024-02-29'"},
		{"emoji", "SELECT count(*) FROM books_book WHERE title LIKE '%🐉%'"},
	}
	for _, c := range checks {
		if queryInt(t, db, c.query) == 0 {
			t.Errorf("no %s (%s)", c.what, c.query)
		}
	}
}

// checkStorage asserts that every FileField key the database holds is a file under dir, with
// the checksum and size the rows record.
func checkStorage(t *testing.T, db *sql.DB, dir string) {
	t.Helper()
	files := scan(t, dir)
	keys := map[string]bool{}
	for _, q := range []string{
		"SELECT avatar FROM accounts_user",
		"SELECT cover_image FROM books_book",
		"SELECT content_file FROM books_chapter",
		"SELECT file FROM books_chaptermedia",
		"SELECT file FROM books_bookfile",
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			if k == "" {
				continue
			}
			keys[k] = true
			if _, ok := files[k]; !ok {
				t.Errorf("%s: %q is not in storage", q, k)
			}
		}
		rows.Close()
	}
	if len(keys) != len(files) {
		t.Errorf("%d keys referenced, %d files in storage", len(keys), len(files))
	}
	rows, err := db.Query("SELECT file, checksum FROM books_bookfile")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, sum string
		if err := rows.Scan(&k, &sum); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(k)))
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: checksum %s does not match the file", k, sum)
		}
	}
	mrows, err := db.Query("SELECT file, size_bytes FROM books_chaptermedia WHERE media_type <> 'video'")
	if err != nil {
		t.Fatal(err)
	}
	defer mrows.Close()
	for mrows.Next() {
		var k string
		var size int64
		if err := mrows.Scan(&k, &size); err != nil {
			t.Fatal(err)
		}
		if files[k].size != size {
			t.Errorf("%s: size_bytes %d, file has %d bytes", k, size, files[k].size)
		}
	}
}

func TestFillSQLite(t *testing.T) {
	o := DefaultOptions()
	dbPath, storage, sum := fillSQLite(t, o)
	db := openSQL(t, "sqlite", dbPath)
	checkDB(t, db, o, sum)
	checkStorage(t, db, storage)
	if sum.Files != len(scan(t, storage)) || sum.Files == 0 {
		t.Errorf("Summary.Files = %d", sum.Files)
	}

	// Values are stored as Django stores them on SQLite.
	for _, c := range []struct{ what, query string }{
		{"foreign key violations", "SELECT count(*) FROM pragma_foreign_key_check"},
		{"UUIDs not in 32-digit form", "SELECT count(*) FROM books_changelog WHERE length(change_id) <> 32"},
		{"datetimes not in Django's text form", "SELECT count(*) FROM books_chapter WHERE typeof(created_at) <> 'text' OR (length(created_at) <> 19 AND length(created_at) <> 26)"},
		{"durations not in microseconds", "SELECT count(*) FROM accounts_translationassignment WHERE time_spent IS NOT NULL AND typeof(time_spent) <> 'integer'"},
		{"booleans not 0/1", "SELECT count(*) FROM books_book WHERE is_published NOT IN (0, 1)"},
		{"invalid JSON", "SELECT count(*) FROM books_book WHERE NOT json_valid(metadata)"},
	} {
		if n := queryInt(t, db, c.query); n != 0 {
			t.Errorf("%d %s", n, c.what)
		}
	}
	if n := queryInt(t, db, "SELECT count(*) FROM books_book WHERE description LIKE '%' || char(13, 10) || '%'"); n == 0 {
		t.Error("no CRLF")
	}
	if n := queryInt(t, db, "SELECT count(*) FROM books_author WHERE length(created_at) = 19"); n == 0 {
		t.Error("no datetime without a fraction (microseconds 0)")
	}
	// AUTOINCREMENT is past the largest id, so the site's next insert works.
	if seq, max := queryInt(t, db, "SELECT seq FROM sqlite_sequence WHERE name = 'books_chapter'"), queryInt(t, db, "SELECT max(id) FROM books_chapter"); seq < max {
		t.Errorf("books_chapter sequence %d below max id %d", seq, max)
	}
}

func TestFillPostgres(t *testing.T) {
	url := pgtest.URL(t)
	o := DefaultOptions()
	storage := filepath.Join(t.TempDir(), "media")
	sum, err := Fill(context.Background(), url, storage, o)
	if err != nil {
		t.Fatal(err)
	}
	db := openSQL(t, "pgx", url)
	checkDB(t, db, o, sum)
	checkStorage(t, db, storage)
	refusesNonEmpty(t, url)
	for _, c := range []struct{ what, query string }{
		{"big integer in JSON", "SELECT count(*) FROM books_book WHERE metadata->'stats'->>'big' = '9007199254740993'"},
		{"duration with days and microseconds", "SELECT count(*) FROM accounts_translationassignment WHERE time_spent = interval '1 day 02:03:04.000500'"},
		{"rating 5.00", "SELECT count(*) FROM books_book WHERE rating::text = '5.00'"},
		{"microseconds 1-999", "SELECT count(*) FROM books_chapter WHERE extract(microseconds FROM created_at)::bigint % 1000000 BETWEEN 1 AND 999"},
		{"CRLF", "SELECT count(*) FROM books_book WHERE strpos(description, chr(13) || chr(10)) > 0"},
		{"JSON string diff", "SELECT count(*) FROM books_changelog WHERE jsonb_typeof(diff) = 'string'"},
	} {
		if queryInt(t, db, c.query) == 0 {
			t.Errorf("no %s (%s)", c.what, c.query)
		}
	}
}

// dump reads every table Fill writes, ordered by id, as text.
func dump(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for table := range ExpectedRows(DefaultOptions()) {
		rows, err := db.Query("SELECT * FROM " + table + " ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out[table] = append(out[table], fmt.Sprintf("%q", vals))
		}
		rows.Close()
	}
	return out
}

func TestFillDeterministic(t *testing.T) {
	o := DefaultOptions()
	db1, st1, _ := fillSQLite(t, o)
	db2, st2, _ := fillSQLite(t, o)
	d1, d2 := dump(t, openSQL(t, "sqlite", db1)), dump(t, openSQL(t, "sqlite", db2))
	if !reflect.DeepEqual(d1, d2) {
		for table := range d1 {
			if !reflect.DeepEqual(d1[table], d2[table]) {
				t.Errorf("%s differs between two Fills with the same seed", table)
			}
		}
	}
	if f1, f2 := scan(t, st1), scan(t, st2); !reflect.DeepEqual(f1, f2) {
		t.Error("files differ between two Fills with the same seed")
	}
}

func TestFillOnlyChapters(t *testing.T) {
	o := Options{Seed: 5, Users: 2, Authors: 1, Languages: 1, OnlyChapters: 2500, FileBytes: 100}
	dbPath, storage, sum := fillSQLite(t, o)
	db := openSQL(t, "sqlite", dbPath)
	if sum.Rows["books_chapter"] != 2500 || queryInt(t, db, "SELECT count(*) FROM books_chapter") != 2500 {
		t.Errorf("books_chapter: %d rows", sum.Rows["books_chapter"])
	}
	if n := queryInt(t, db, "SELECT count(*) FROM pragma_foreign_key_check"); n != 0 {
		t.Errorf("%d foreign key violations", n)
	}
	if _, err := os.Stat(storage); !os.IsNotExist(err) || sum.Files != 0 {
		t.Errorf("OnlyChapters wrote files (%d)", sum.Files)
	}
	var big []string
	for table, n := range sum.Rows {
		if n > 100 && table != "books_chapter" {
			big = append(big, table)
		}
	}
	sort.Strings(big)
	if len(big) > 0 {
		t.Errorf("tables other than books_chapter are big: %v", big)
	}
}

func TestFillErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Fill(ctx, "sqlite:///"+filepath.Join(t.TempDir(), "x.sqlite3"), t.TempDir(), Options{Books: 1}); err == nil {
		t.Error("books without authors accepted")
	}
	if _, err := Fill(ctx, "mysql://nope", t.TempDir(), DefaultOptions()); err == nil {
		t.Error("an unsupported URL accepted")
	}
	// A second Fill into the same database is refused before it writes anything.
	dbPath, _, _ := fillSQLite(t, DefaultOptions())
	refusesNonEmpty(t, "sqlite:///"+dbPath)
}

// refusesNonEmpty checks that Fill into a database with rows fails naming a table, and
// writes no file.
func refusesNonEmpty(t *testing.T, url string) {
	t.Helper()
	storage := filepath.Join(t.TempDir(), "second")
	_, err := Fill(context.Background(), url, storage, DefaultOptions())
	if err == nil || !strings.Contains(err.Error(), "already has") || !strings.Contains(err.Error(), "empty") {
		t.Errorf("filling a non-empty database: %v", err)
	}
	if _, serr := os.Stat(storage); !os.IsNotExist(serr) {
		t.Errorf("a refused Fill wrote files into %s (%v)", storage, serr)
	}
}
