package database

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// emptyPlatform deletes every model's rows (and M2M rows), leaving what `migrate` writes
// (content types, permissions): a freshly migrated site.
func emptyPlatform(t testing.TB, db *DB) {
	t.Helper()
	var stmts []string
	for _, m := range platform.Default.Models {
		for _, f := range m.ManyToMany() {
			stmts = append(stmts, "DELETE FROM "+quote(f.ThroughTable))
		}
		stmts = append(stmts, "DELETE FROM "+quote(m.Table))
	}
	ctx := context.Background()
	var err error
	if db.pool != nil {
		_, err = db.pool.Exec(ctx, "BEGIN; SET CONSTRAINTS ALL DEFERRED; "+strings.Join(stmts, "; ")+"; COMMIT")
	} else {
		_, err = db.sql.ExecContext(ctx, "PRAGMA foreign_keys = OFF; "+strings.Join(stmts, "; ")+"; PRAGMA foreign_keys = ON")
	}
	if err != nil {
		t.Fatalf("empty platform: %v", err)
	}
}

// fileFixtures loads every model from the fixture files in dir.
func fileFixtures(dir string, models ...platform.Model) []LoadFixture {
	if len(models) == 0 {
		models = platform.Default.Models
	}
	var out []LoadFixture
	for _, m := range models {
		p := filepath.Join(dir, m.FixtureName())
		out = append(out, LoadFixture{Model: m, Open: func() (io.ReadCloser, error) { return os.Open(p) }})
	}
	return out
}

// bytesFixture loads m from data.
func bytesFixture(m platform.Model, data []byte) LoadFixture {
	return LoadFixture{Model: m, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

// exportAll exports every model as whole files in format f.
func exportAll(t testing.TB, db *DB, f fixture.Format) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, m := range platform.Default.Models {
		out[m.Label] = exportFile(t, db, "", m, f)
	}
	return out
}

func compareExports(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for _, m := range platform.Default.Models {
		if !bytes.Equal(got[m.Label], want[m.Label]) {
			t.Errorf("%s differs:\n%s", m.Label, firstDiff(got[m.Label], want[m.Label]))
		}
	}
}

// parsedObjects reads a fixture into generic values, for comparisons that ignore layout and
// JSON object key order (PostgreSQL's jsonb reorders keys).
func parsedObjects(t testing.TB, data []byte) []any {
	t.Helper()
	r := fixture.NewReader(bytes.NewReader(data))
	var out []any
	for {
		o, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string]any{}
		for _, f := range o.Fields {
			dec := json.NewDecoder(bytes.NewReader(f.Value))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			fields[f.Name] = v
		}
		out = append(out, []any{o.Model, string(o.PK), fields})
	}
}

func compareParsed(t *testing.T, label string, got, want []byte) {
	t.Helper()
	g, w := parsedObjects(t, got), parsedObjects(t, want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: values differ:\ngot:  %v\nwant: %v", label, g, w)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func load(t testing.TB, db *DB, fixtures []LoadFixture, o LoadOptions) []LoadedModel {
	t.Helper()
	out, err := db.Load(context.Background(), fixtures, o)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return out
}

// TestLoadRoundTrip loads the reference fixtures (PostgreSQL's indented and compact, SQLite's
// indented) into a migrated, empty database of either engine and exports them again: same
// bytes when the fixtures come from the same engine, same values across engines.
func TestLoadRoundTrip(t *testing.T) {
	sources := []struct {
		name   string
		dir    string
		format fixture.Format
		engine string // the engine the fixtures were dumped from
	}{
		{"indented", filepath.Join(testdata, "sample-fixtures"), fixture.Format{Indent: 2}, Postgres},
		{"compact", filepath.Join(testdata, "sample-fixtures", "compact"), fixture.Format{Indent: -1}, Postgres},
		{"sqlite", filepath.Join(testdata, "sample-fixtures", "sqlite"), fixture.Format{Indent: 2}, SQLite},
	}
	engines(t, func(t *testing.T, db *DB) {
		for _, src := range sources {
			t.Run(src.name, func(t *testing.T) {
				emptyPlatform(t, db)
				loaded := load(t, db, fileFixtures(src.dir), LoadOptions{})
				if len(loaded) != len(platform.Default.Models) {
					t.Fatalf("%d models loaded", len(loaded))
				}
				for i, m := range platform.Default.Models {
					want := int64(len(parsedObjects(t, readFile(t, filepath.Join(src.dir, m.FixtureName())))))
					if l := loaded[i]; l.Label != m.Label || l.Rows != want || l.Before != 0 {
						t.Errorf("loaded %+v, want %s with %d rows, 0 before", l, m.Label, want)
					}
				}
				got := exportAll(t, db, src.format)
				for _, m := range platform.Default.Models {
					want := readFile(t, filepath.Join(src.dir, m.FixtureName()))
					if db.src.Engine == src.engine {
						if !bytes.Equal(got[m.Label], want) {
							t.Errorf("%s differs:\n%s", m.Label, firstDiff(got[m.Label], want))
						}
					} else {
						compareParsed(t, m.Label, got[m.Label], want)
					}
				}
			})
		}
	})
}

// TestLoadSQLiteStorage checks values are stored as Django's SQLite backend stores them.
func TestLoadSQLiteStorage(t *testing.T) {
	db := openT(t, sampleSQLite(t))
	ctx := context.Background()
	query := `SELECT b.metadata, b.rating, typeof(b.rating), CAST(b.created_at AS TEXT), b.is_published, c.change_id, a.time_spent
		FROM books_book b, books_changelog c, accounts_translationassignment a WHERE b.id = 1 AND c.id = 1 AND a.id = 1`
	var before, after [7]any
	scan := func(dst *[7]any) {
		t.Helper()
		ptrs := make([]any, len(dst))
		for i := range dst {
			ptrs[i] = &dst[i]
		}
		if err := db.sql.QueryRowContext(ctx, query).Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
	}
	scan(&before)
	emptyPlatform(t, db)
	load(t, db, fileFixtures(filepath.Join(testdata, "sample-fixtures", "sqlite")), LoadOptions{})
	scan(&after)
	// The fixture truncated the sample's 13:22:21.000456 to ".000": loaded as 1 µs, so
	// that it exports the same (see decodeValue).
	before[3] = "2023-01-12 13:22:21.000001"
	for i := range before {
		if fmt.Sprint(before[i]) != fmt.Sprint(after[i]) || fmt.Sprintf("%T", before[i]) != fmt.Sprintf("%T", after[i]) {
			t.Errorf("column %d stored as %v (%T), Django stored %v (%T)", i, after[i], after[i], before[i], before[i])
		}
	}
}

// engineFixtures is the directory of the reference fixtures dumped from db's engine.
func engineFixtures(db *DB) string {
	if db.src.Engine == SQLite {
		return filepath.Join(testdata, "sample-fixtures", "sqlite")
	}
	return filepath.Join(testdata, "sample-fixtures")
}

// TestLoadReplaceAndMerge: a replace removes rows the backup does not have, a merge keeps
// them and overwrites the others, M2M lists included.
func TestLoadReplaceAndMerge(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		dir := engineFixtures(db)
		load(t, db, fileFixtures(dir), LoadOptions{})
		want := exportAll(t, db, fixture.Format{Indent: 2})
		exec := func(q string) {
			t.Helper()
			var err error
			if db.pool != nil {
				_, err = db.pool.Exec(ctx, q)
			} else {
				_, err = db.sql.ExecContext(ctx, q)
			}
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		change := func() {
			exec(`INSERT INTO books_language (id, code, name) VALUES (99, 'xx', 'Extra')`)
			exec(`UPDATE books_language SET name = 'Changed' WHERE id = 1`)
			exec(`DELETE FROM books_book_related_books`)
			exec(`INSERT INTO books_book_related_books (from_book_id, to_book_id) VALUES (1, 1)`)
		}

		change()
		loaded := load(t, db, fileFixtures(dir), LoadOptions{})
		if loaded[0].Label != "books.language" || loaded[0].Before != 6 || loaded[0].Rows != 5 || loaded[3].Label != "books.book" || loaded[3].Before != 2 {
			t.Errorf("languages: %+v", loaded[0])
		}
		compareExports(t, exportAll(t, db, fixture.Format{Indent: 2}), want)

		change()
		load(t, db, fileFixtures(dir), LoadOptions{Merge: true})
		got := exportAll(t, db, fixture.Format{Indent: 2})
		lang := got["books.language"]
		if !bytes.Contains(lang, []byte(`"name": "Extra"`)) || bytes.Contains(lang, []byte("Changed")) {
			t.Errorf("merge: languages are\n%s", lang)
		}
		got["books.language"] = want["books.language"]
		compareExports(t, got, want)

		// Merge twice changes nothing.
		load(t, db, fileFixtures(dir), LoadOptions{Merge: true})
		got = exportAll(t, db, fixture.Format{Indent: 2})
		got["books.language"] = want["books.language"]
		compareExports(t, got, want)
	})
}

// withoutObjects returns a fixture file without the objects whose pk is in drop, and with
// edit applied to each remaining object's fields.
func editFixture(t testing.TB, data []byte, drop map[string]bool, edit func(pk string, fields map[string]json.RawMessage)) []byte {
	t.Helper()
	r := fixture.NewReader(bytes.NewReader(data))
	var buf bytes.Buffer
	buf.WriteString("[\n")
	first := true
	for {
		o, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if drop[string(o.PK)] {
			continue
		}
		var fields []byte
		fields = append(fields, '{')
		m := map[string]json.RawMessage{}
		for _, f := range o.Fields {
			m[f.Name] = f.Value
		}
		if edit != nil {
			edit(string(o.PK), m)
		}
		i := 0
		for _, f := range o.Fields {
			v, ok := m[f.Name]
			if !ok {
				continue
			}
			if i > 0 {
				fields = append(fields, ", "...)
			}
			i++
			fields = append(fields, fmt.Sprintf("%q: %s", f.Name, v)...)
			delete(m, f.Name)
		}
		for k, v := range m { // added fields
			if i > 0 {
				fields = append(fields, ", "...)
			}
			i++
			fields = append(fields, fmt.Sprintf("%q: %s", k, v)...)
		}
		fields = append(fields, '}')
		if !first {
			buf.WriteString(",\n")
		}
		first = false
		fmt.Fprintf(&buf, `{"model": %q, "pk": %s, "fields": %s}`, o.Model, o.PK, fields)
	}
	buf.WriteString("\n]\n")
	return buf.Bytes()
}

// TestLoadFailuresChangeNothing: every failure names what is wrong and leaves the database
// exactly as it was.
func TestLoadFailuresChangeNothing(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	book, chapter := model(t, "books.book"), model(t, "books.chapter")
	books := readFile(t, filepath.Join(dir, book.FixtureName()))
	chapters := readFile(t, filepath.Join(dir, chapter.FixtureName()))
	setField := func(pk, name, value string) func(string, map[string]json.RawMessage) {
		return func(p string, f map[string]json.RawMessage) {
			if p == pk {
				if value == "" {
					delete(f, name)
				} else {
					f[name] = json.RawMessage(value)
				}
			}
		}
	}
	tests := []struct {
		name     string
		fixtures func(t testing.TB) []LoadFixture
		merge    bool
		want     []string // in the error
	}{
		{"bad integer", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("4", "word_count", `"abc"`)))}
		}, false, []string{`load books.chapter pk 4: field "word_count": not an integer: "abc"`}},
		{"bad datetime", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("2", "created_at", `"2024-13-01T00:00:00Z"`)))}
		}, false, []string{`load books.chapter pk 2: field "created_at": not a datetime`}},
		{"missing field", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("4", "title", "")))}
		}, false, []string{`load books.chapter pk 4: field "title" is missing`}},
		{"unknown field", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("4", "subtitle", `"x"`)))}
		}, false, []string{`load books.chapter pk 4: unknown field "subtitle"`}},
		{"null in a non-null field", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("1", "status", `null`)))}
		}, false, []string{`load books.chapter pk 1: field "status": null`}},
		{"bad JSON fixture", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, chapters[:len(chapters)/2])}
		}, false, []string{"load books.chapter", "unexpected EOF"}},
		{"duplicate pk", func(t testing.TB) []LoadFixture {
			dup := bytes.Replace(chapters, []byte(`"pk": 2,`), []byte(`"pk": 1,`), 1)
			return []LoadFixture{bytesFixture(chapter, dup)}
		}, false, []string{"books.chapter pk 1"}},
		{"reference to a missing row", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("5", "book", `999`)))}
		}, false, []string{"books.chapter pk 5", `field "book" = 999`, "books_book", "nothing was changed"}},
		{"reference to a missing row, merge", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("5", "book", `999`)))}
		}, true, []string{"books.chapter pk 5", `field "book" = 999`, "books_book"}},
		{"subset leaves a chapter without its book", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(book, editFixture(t, books, map[string]bool{"2": true}, nil))}
		}, false, []string{" pk ", `field "book" = 2`, "books.book (table books_book)", "nothing was changed"}},
		{"M2M to a missing row", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(book, editFixture(t, books, nil, setField("1", "related_books", `[2, 77]`)))}
		}, false, []string{"books.book pk 1", `many-to-many field "related_books" lists 77`, "books_book"}},
		{"value too long", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("6", "status", `"`+strings.Repeat("x", 30)+`"`)))}
		}, false, []string{"books.chapter pk 6", `"status"`}},
		{"invalid UTF-8 in a text field", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(book, books), bytesFixture(chapter, editFixture(t, chapters, nil, setField("4", "title", "\"Chapter \xff\xfe four\"")))}
		}, false, []string{"books.chapter pk 4", `field "title"`, "not valid UTF-8"}},
		{"unpaired surrogate escape, merge", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(chapter, editFixture(t, chapters, nil, setField("5", "title", `"x\udc00"`)))}
		}, true, []string{"books.chapter pk 5", `field "title"`, "not valid UTF-8"}},
		{"second fixture fails after the first loaded", func(t testing.TB) []LoadFixture {
			return []LoadFixture{bytesFixture(book, books), bytesFixture(chapter, editFixture(t, chapters, nil, setField("6", "number", `-1`)))}
		}, false, []string{"books.chapter pk 6", `"number"`}},
	}
	engines(t, func(t *testing.T, db *DB) {
		before := exportAll(t, db, fixture.Format{})
		seqBefore := sequenceStates(t, db)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.name == "value too long" && db.pool == nil {
					t.Skip("SQLite does not limit varchar lengths, nor does Django there")
				}
				_, err := db.Load(context.Background(), tt.fixtures(t), LoadOptions{Merge: tt.merge})
				if err == nil {
					t.Fatal("load succeeded")
				}
				t.Log(err)
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				compareExports(t, exportAll(t, db, fixture.Format{}), before)
				if got := sequenceStates(t, db); !maps.Equal(got, seqBefore) {
					t.Errorf("sequences moved: before %v, after %v", seqBefore, got)
				}
			})
		}
	})
}

// sequenceStates is every sequence's state (PostgreSQL) or sqlite_sequence row (SQLite).
func sequenceStates(t testing.TB, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	var name, state string
	var err error
	if db.pool != nil {
		var rows pgx.Rows
		rows, err = db.pool.Query(context.Background(), `SELECT sequencename, coalesce(last_value::text, 'unused') FROM pg_sequences`)
		if err == nil {
			_, err = pgx.ForEachRow(rows, []any{&name, &state}, func() error { out[name] = state; return nil })
		}
	} else {
		var rows *sql.Rows
		rows, err = db.sql.QueryContext(context.Background(), `SELECT name, seq FROM sqlite_sequence`)
		for err == nil && rows.Next() {
			if err = rows.Scan(&name, &state); err == nil {
				out[name] = state
			}
		}
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		t.Fatalf("read sequences: %v", err)
	}
	return out
}

// TestLoadSubsetKeepsReferences restores books.book alone while chapters point at books.
func TestLoadSubsetKeepsReferences(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		dir := engineFixtures(db)
		load(t, db, fileFixtures(dir), LoadOptions{})
		want := exportAll(t, db, fixture.Format{Indent: 2})
		loaded := load(t, db, fileFixtures(dir, model(t, "books.book")), LoadOptions{})
		if len(loaded) != 1 || loaded[0].Rows != 2 || loaded[0].Before != 2 {
			t.Errorf("loaded %+v", loaded)
		}
		compareExports(t, exportAll(t, db, fixture.Format{Indent: 2}), want)
	})
}

// TestLoadSequences: after a load, inserts without an id get one past the loaded ids.
func TestLoadSequences(t *testing.T) {
	lang := model(t, "books.language")
	book := model(t, "books.book")
	fixtures := []LoadFixture{
		bytesFixture(lang, []byte(`[{"model": "books.language", "pk": 100, "fields": {"code": "a", "name": "A"}},
			{"model": "books.language", "pk": 250, "fields": {"code": "b", "name": "B"}}]`)),
	}
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		// The through table's rows get new ids: they must not collide either.
		if db.pool != nil {
			if _, err := db.pool.Exec(ctx, "ALTER SEQUENCE books_book_related_books_id_seq RESTART WITH 1; ALTER SEQUENCE books_language_id_seq RESTART WITH 1"); err != nil {
				t.Fatal(err)
			}
		}
		load(t, db, append(fixtures, fileFixtures(filepath.Join(testdata, "sample-fixtures"), book)...), LoadOptions{Merge: true})
		queries := []struct{ q, table string }{
			{"INSERT INTO books_language (code, name) VALUES ('new', 'New') RETURNING id", "books_language"},
			{"INSERT INTO books_book_related_books (from_book_id, to_book_id) VALUES (2, 2) RETURNING id", "books_book_related_books"},
		}
		for _, q := range queries {
			var id, maxID int64
			var err error
			if db.pool != nil {
				err = db.pool.QueryRow(ctx, q.q).Scan(&id)
			} else {
				err = db.sql.QueryRowContext(ctx, q.q).Scan(&id)
			}
			if err != nil {
				t.Fatalf("%s: %v", q.q, err)
			}
			mq := "SELECT max(id) FROM " + q.table + " WHERE id <> $1"
			if db.pool != nil {
				err = db.pool.QueryRow(ctx, mq, id).Scan(&maxID)
			} else {
				err = db.sql.QueryRowContext(ctx, strings.Replace(mq, "$1", "?", 1), id).Scan(&maxID)
			}
			if err != nil || id <= maxID {
				t.Errorf("%s: new id %d, max before %d (%v)", q.table, id, maxID, err)
			}
		}
	})
}

// cancelAfter is a fixture that cancels the load's context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	if len(p) > 4096 {
		p = p[:4096]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func (c *cancelAfter) Close() error { return nil }

// TestLoadCancelled: a context cancelled in the middle of a table rolls everything back.
func TestLoadCancelled(t *testing.T) {
	big := chaptersFixture(t, 20_000, 1)
	engines(t, func(t *testing.T, db *DB) {
		before := exportAll(t, db, fixture.Format{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		fixtures := fileFixtures(filepath.Join(testdata, "sample-fixtures"), model(t, "books.language"), model(t, "books.author"))
		fixtures = append(fixtures, LoadFixture{Model: model(t, "books.chapter"), Open: func() (io.ReadCloser, error) {
			return &cancelAfter{r: bytes.NewReader(big), n: len(big) / 2, cancel: cancel}, nil
		}})
		_, err := db.Load(ctx, fixtures, LoadOptions{})
		if err == nil {
			t.Fatal("cancelled load succeeded")
		}
		if !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "cancel") {
			t.Errorf("error %v does not say the load was cancelled", err)
		}
		compareExports(t, exportAll(t, db, fixture.Format{}), before)
	})
}

// chaptersFixture returns a lines-layout fixture of n chapters of the sample's book 1 with
// ids from 1000, chapter numbers from 1000, every tenth translated from the one before.
func chaptersFixture(t testing.TB, n int, book int) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Grow(n * 400)
	buf.WriteString("[\n")
	for i := range n {
		if i > 0 {
			buf.WriteString(",\n")
		}
		id := 1000 + i
		from := "null"
		if i%10 == 9 {
			from = fmt.Sprint(id - 1)
		}
		fmt.Fprintf(&buf, `{"model": "books.chapter", "pk": %d, "fields": {"book": %d, "number": %d, "title": "Chapter %d: 龍 \"the\" return", `+
			`"content_file": "content/%d/%d.json", "word_count": %d, "status": "published", "translated_from": %s, `+
			`"published_at": "2024-12-01T14:30:22.123Z", "created_at": "2023-01-02T03:04:05Z", "updated_at": "2024-02-29T23:59:59.999Z"}}`,
			id, book, id, id, book, id, i%5000, from)
	}
	buf.WriteString("\n]\n")
	return buf.Bytes()
}

// The helper process of TestLoadKilled: it loads the fixture named by the environment and
// is killed in the middle.
const (
	envHelperURL     = "WNB_TEST_LOAD_HELPER_URL"
	envHelperFixture = "WNB_TEST_LOAD_HELPER_FIXTURE"
)

func TestHelperLoad(t *testing.T) {
	url := os.Getenv(envHelperURL)
	if url == "" {
		t.Skip("helper process of TestLoadKilled")
	}
	db, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("loading")
	_, err = db.Load(context.Background(), fileFixturesPath(t, os.Getenv(envHelperFixture)), LoadOptions{})
	fmt.Println("load returned", err)
}

func fileFixturesPath(t testing.TB, path string) []LoadFixture {
	return []LoadFixture{{Model: model(t, "books.chapter"), Open: func() (io.ReadCloser, error) { return os.Open(path) }}}
}

// TestLoadKilled: a load whose process dies with SIGKILL in the middle of a table leaves the
// database as it was.
func TestLoadKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a large fixture")
	}
	path := filepath.Join(t.TempDir(), "chapters.json")
	if err := os.WriteFile(path, chaptersFixture(t, 150_000, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		before := exportAll(t, db, fixture.Format{})
		var url string
		if db.pool != nil {
			url = db.pool.Config().ConnString()
		} else {
			url = "sqlite:///" + db.src.DSN
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLoad$", "-test.v")
		cmd.Env = append(os.Environ(), envHelperURL+"="+url, envHelperFixture+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		lines := make(chan string, 100)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		go func() {
			for range lines {
			}
			close(exited)
		}()
		// Kill once the chapters are being written: PostgreSQL shows the COPY in
		// pg_stat_activity, SQLite has its rollback journal.
		inProgress := func() bool {
			if db.pool != nil {
				var n int
				err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND state = 'active' AND query ILIKE 'copy%books_chapter%'`).Scan(&n)
				return err == nil && n > 0
			}
			_, err := os.Stat(db.src.DSN + "-journal")
			return err == nil
		}
		deadline := time.Now().Add(30 * time.Second)
		for !inProgress() {
			select {
			case <-exited:
				cmd.Wait()
				t.Fatal("the helper finished before it could be killed")
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the load never started")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // some rows in
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		<-exited

		if db.pool != nil {
			// The server notices the dead client and rolls back.
			for {
				var n int
				if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'copy%'`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the killed load's backend is still there")
				}
				time.Sleep(10 * time.Millisecond)
			}
		} else {
			// A new connection rolls the hot journal back.
			db.Close()
			db = openT(t, url)
		}
		counts, err := db.CountRows(ctx, []platform.Model{model(t, "books.chapter")})
		if err != nil {
			t.Fatal(err)
		}
		if counts["books.chapter"] != 6 {
			t.Errorf("%d chapters after the killed load, want the 6 of before", counts["books.chapter"])
		}
		compareExports(t, exportAll(t, db, fixture.Format{}), before)
	})
}

// TestLoadKeepsKeysItCannotDrop: where the load may not drop a table's keys — a view depends
// on a primary key, or the user does not own the tables — it keeps them and still loads, and
// they still catch what they exist for.
func TestLoadKeepsKeysItCannotDrop(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	chapter := model(t, "books.chapter")
	chapters := readFile(t, filepath.Join(dir, chapter.FixtureName()))
	dangling := bytes.Replace(chapters, []byte(`"book": 1,`), []byte(`"book": 999,`), 1)
	duplicate := bytes.Replace(chapters, []byte(`"pk": 2,`), []byte(`"pk": 1,`), 1)
	if bytes.Equal(dangling, chapters) || bytes.Equal(duplicate, chapters) {
		t.Fatal("the sample chapters changed: edit the test")
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, url string) string // returns the URL to load with
	}{
		{"a view depends on a primary key", func(t *testing.T, url string) string {
			// GROUP BY the pk makes the view depend on books_chapter_pkey.
			execScript(t, url, "CREATE VIEW chapter_titles AS SELECT c.id, c.title FROM books_chapter c GROUP BY c.id")
			return url
		}},
		{"not the tables' owner", func(t *testing.T, url string) string {
			role := fmt.Sprintf("wnb_loader_%d", time.Now().UnixNano())
			execScript(t, url, fmt.Sprintf(`CREATE ROLE %[1]s LOGIN;
				GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %[1]s;
				GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO %[1]s`, role))
			t.Cleanup(func() { execScript(t, url, fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role)) })
			return strings.Replace(url, "postgres://postgres@", "postgres://"+role+"@", 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := samplePostgres(t)
			owner := openT(t, url)
			db := openT(t, tt.setup(t, url))
			want := exportAll(t, owner, fixture.Format{})
			load(t, db, fileFixtures(dir), LoadOptions{})
			compareExports(t, exportAll(t, owner, fixture.Format{}), want)

			for _, bad := range []struct {
				data []byte
				msg  string
			}{
				{dangling, `field "book" = 999`},
				{duplicate, "books.chapter pk 1"},
			} {
				_, err := db.Load(context.Background(), []LoadFixture{bytesFixture(chapter, bad.data)}, LoadOptions{})
				if err == nil || !strings.Contains(err.Error(), bad.msg) {
					t.Errorf("load: %v, want an error with %q", err, bad.msg)
				}
				compareExports(t, exportAll(t, owner, fixture.Format{}), want)
			}
		})
	}
}

// TestLoadErrorsNameNoValues: a constraint error names the model, pk, column and constraint,
// never the values of the failing row (password hashes, e-mail addresses, chapter text).
func TestLoadErrorsNameNoValues(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	user, chapter := model(t, "accounts.user"), model(t, "books.chapter")
	users := readFile(t, filepath.Join(dir, user.FixtureName()))
	chapters := readFile(t, filepath.Join(dir, chapter.FixtureName()))
	const secretHash, secretMail, secretText = `"pbkdf2_sha256$1$SECRETSALT$SECRETHASH"`, `"secret.person@example.org"`, `"content/SECRET unpublished/1.json"`
	secrets := []string{"SECRETHASH", "secret.person", "SECRET unpublished", "reader_1"}
	sameUsername := func(pk string, f map[string]json.RawMessage) {
		if pk == "2" {
			f["username"] = json.RawMessage(`"reader_1"`)
			f["password"], f["email"] = json.RawMessage(secretHash), json.RawMessage(secretMail)
		}
	}
	// A site's own check constraint, which no fixture check knows: PostgreSQL's error
	// detail then holds the whole failing row.
	const siteCheck = "ALTER TABLE books_chapter ADD CONSTRAINT site_title_check CHECK (title <> 'forbidden')"
	forbiddenTitle := func(pk string, f map[string]json.RawMessage) {
		if pk == "6" {
			f["title"], f["content_file"] = json.RawMessage(`"forbidden"`), json.RawMessage(secretText)
		}
	}
	tests := []struct {
		name    string
		fixture LoadFixture
		merge   bool
		want    []string
	}{
		{"unique username, replace", bytesFixture(user, editFixture(t, users, nil, sameUsername)), false, []string{"(username)", "accounts_user_username_key"}},
		{"unique username, merge", bytesFixture(user, editFixture(t, users, nil, sameUsername)), true, []string{"accounts.user", "(username)", "accounts_user_username_key"}},
		{"site check constraint", bytesFixture(chapter, editFixture(t, chapters, nil, forbiddenTitle)), false, []string{"books.chapter pk 6", "site_title_check"}},
	}
	engines(t, func(t *testing.T, db *DB) {
		if db.pool != nil {
			ctx := context.Background()
			if _, err := db.pool.Exec(ctx, siteCheck); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.pool.Exec(ctx, "ALTER TABLE books_chapter DROP CONSTRAINT site_title_check") })
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if db.pool == nil && strings.HasPrefix(tt.name, "site") {
					t.Skip("the site's check constraint is added to PostgreSQL only")
				}
				_, err := db.Load(context.Background(), []LoadFixture{tt.fixture}, LoadOptions{Merge: tt.merge})
				if err == nil {
					t.Fatal("load succeeded")
				}
				t.Log(err)
				for _, s := range secrets {
					if strings.Contains(err.Error(), s) {
						t.Errorf("error %q holds the row value %q", err, s)
					}
				}
				if db.pool == nil {
					return // SQLite's messages name the constraint's columns, never values
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
			})
		}
	})
}

// TestLoadTakesCheckedColumns: a load that follows a schema check within checkedFresh takes
// the column types the check read (a type changed in between shows: the COPY refuses the
// tuples), once; an older check's are read again.
func TestLoadTakesCheckedColumns(t *testing.T) {
	url := samplePostgres(t)
	db := openT(t, url)
	ctx := context.Background()
	dir := filepath.Join(testdata, "sample-fixtures")
	chapter := model(t, "books.chapter")
	check := func() {
		t.Helper()
		if _, err := db.CheckSchema(ctx, platform.Default.Models); err != nil {
			t.Fatal(err)
		}
	}
	check()
	execScript(t, url, "ALTER TABLE books_chapter ALTER word_count TYPE bigint")
	if _, err := db.Load(ctx, fileFixtures(dir, chapter), LoadOptions{}); err == nil || !strings.Contains(err.Error(), "copy into books_chapter") {
		t.Fatalf("load: %v; want the COPY to refuse tuples of the types the check read before the change", err)
	}
	load(t, db, fileFixtures(dir, chapter), LoadOptions{}) // taken once: read again

	check()
	db.checked.Load().at = time.Now().Add(-checkedFresh - time.Second)
	execScript(t, url, "ALTER TABLE books_chapter ALTER word_count TYPE integer")
	load(t, db, fileFixtures(dir, chapter), LoadOptions{})
}

// An interrupt while the load resets its sequences (here held up by another session's lock on
// one of them) does not leave the old rows with the backup's sequences: the reset and the
// commit finish together, so rows and sequences are both the backup's, and the next insert
// gets a fresh id.
func TestLoadInterruptedAtSequenceReset(t *testing.T) {
	db := openT(t, samplePostgres(t))
	ctx := context.Background()
	lang := model(t, "books.language")
	fixtures := []LoadFixture{bytesFixture(lang, []byte(`[{"model": "books.language", "pk": 100, "fields": {"code": "a", "name": "A"}},
		{"model": "books.language", "pk": 250, "fields": {"code": "b", "name": "B"}}]`))}
	// The authors' sequence is reset after the languages': its lock holds the reset up
	// between the two.
	fixtures = append(fixtures, fileFixtures(filepath.Join(testdata, "sample-fixtures"), model(t, "books.author"))...)
	locker, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Rollback(ctx)
	if _, err := locker.Exec(ctx, "ALTER SEQUENCE books_author_id_seq CACHE 1"); err != nil { // holds its lock
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := db.Load(lctx, fixtures, LoadOptions{Merge: true}); done <- err }()
	deadline := time.Now().Add(30 * time.Second)
	for waiting := false; !waiting; {
		if time.Now().After(deadline) {
			t.Fatal("the load never waited for the sequence's lock")
		}
		if err := db.pool.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%setval%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel() // the operator's Ctrl-C, while the reset waits
	time.Sleep(200 * time.Millisecond)
	locker.Rollback(ctx)
	err = <-done
	var rows, last int64
	if qerr := db.pool.QueryRow(ctx, "SELECT count(*) FILTER (WHERE id IN (100, 250)), (SELECT last_value FROM books_language_id_seq) FROM books_language").Scan(&rows, &last); qerr != nil {
		t.Fatal(qerr)
	}
	switch {
	case err == nil && (rows != 2 || last < 250):
		t.Fatalf("the load succeeded, yet rows 100 and 250: %d, sequence at %d", rows, last)
	case err != nil && rows == 0 && last >= 250:
		t.Fatalf("the load failed (%v) and left the old rows with the backup's sequence (%d)", err, last)
	}
	var id int64
	if err := db.pool.QueryRow(ctx, "INSERT INTO books_language (code, name) VALUES ('new', 'New') RETURNING id").Scan(&id); err != nil {
		t.Fatalf("the next insert: %v", err)
	}
}

// A load cancelled in the middle of a COPY loses its connection with it; the sequences its
// earlier COPYs moved (a through table's ids) are put back through a connection of their own,
// as the rollback does not undo them.
func TestLoadCancelledPutsSequencesBack(t *testing.T) {
	db := openT(t, samplePostgres(t))
	ctx := context.Background()
	seqs := func() string {
		t.Helper()
		var s string
		if err := db.pool.QueryRow(ctx, `SELECT string_agg(sequencename || '=' || coalesce(last_value, 0), ',' ORDER BY sequencename) FROM pg_sequences`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := seqs()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	big := chaptersFixture(t, 20_000, 1)
	dir := filepath.Join(testdata, "sample-fixtures")
	// The books' related_books pairs draw ids from their through table's sequence.
	fixtures := fileFixtures(dir, model(t, "books.language"), model(t, "books.author"), model(t, "books.book"))
	fixtures = append(fixtures, LoadFixture{Model: model(t, "books.chapter"), Open: func() (io.ReadCloser, error) {
		return &cancelAfter{r: bytes.NewReader(big), n: len(big) / 2, cancel: cancel}, nil
	}})
	if _, err := db.Load(lctx, fixtures, LoadOptions{}); err == nil {
		t.Fatal("cancelled load succeeded")
	}
	if after := seqs(); after != before {
		t.Fatalf("sequences moved by a cancelled load:\nbefore %s\nafter  %s", before, after)
	}
}
