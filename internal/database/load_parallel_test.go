package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// schemaObjects lists the indexes and constraints of the platform's tables as their
// definitions: a parallel load drops and creates them again, and must leave the same.
func schemaObjects(t testing.TB, db *DB) []string {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' valid=' || convalidated
		FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var s string
	if _, err := pgx.ForEachRow(rows, []any{&s}, func() error { out = append(out, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("only %d indexes and constraints: %v", len(out), out)
	}
	return out
}

// markerExists reports whether the parallel load's marker table is in the database.
func markerExists(t testing.TB, db *DB) bool {
	t.Helper()
	var ok bool
	if err := db.pool.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", markerTable).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// setParallelHook sets parallelHook for the test.
func setParallelHook(t *testing.T, hook func(string) error) {
	t.Helper()
	parallelHook = hook
	t.Cleanup(func() { parallelHook = nil })
}

// weighedFixtures are the sample fixtures weighed by their objects, as a restore weighs them.
func weighedFixtures(t testing.TB, dir string) []LoadFixture {
	t.Helper()
	fixtures := fileFixtures(dir)
	for i := range fixtures {
		fixtures[i].Weight = int64(len(parsedObjects(t, readFile(t, filepath.Join(dir, fixtures[i].Model.FixtureName())))))
	}
	return fixtures
}

// modelSequences are the sequences of the models' ids (those of the many-to-many tables
// move on with every load: their rows' ids are not in the fixtures).
func modelSequences(t testing.TB, db *DB) map[string]string {
	t.Helper()
	out := sequenceStates(t, db)
	for _, m := range platform.Default.Models {
		for _, f := range m.ManyToMany() {
			delete(out, f.ThroughTable+"_id_seq")
		}
	}
	return out
}

// checkSampleLoaded compares the database's export with the sample fixtures, byte for byte.
func checkSampleLoaded(t *testing.T, db *DB) {
	t.Helper()
	dir := filepath.Join(testdata, "sample-fixtures")
	got := exportAll(t, db, fixture.Format{Indent: 2})
	for _, m := range platform.Default.Models {
		if want := readFile(t, filepath.Join(dir, m.FixtureName())); string(got[m.Label]) != string(want) {
			t.Errorf("%s differs after the parallel load:\n%s", m.Label, firstDiff(got[m.Label], want))
		}
	}
}

// TestLoadParallel loads the sample fixtures into an empty migrated database over 1-3
// connections: the same rows, indexes, constraints and sequences as a one-transaction load,
// and no marker left.
func TestLoadParallel(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	for _, jobs := range []int{2, 3} {
		t.Run(fmt.Sprintf("jobs=%d", jobs), func(t *testing.T) {
			db := openT(t, samplePostgres(t))
			wantSchema := schemaObjects(t, db)
			emptyPlatform(t, db)
			load(t, db, fileFixtures(dir), LoadOptions{})
			wantSeqs := modelSequences(t, db)
			emptyPlatform(t, db)
			loaded := load(t, db, weighedFixtures(t, dir), LoadOptions{Jobs: jobs})
			for i, m := range platform.Default.Models {
				want := int64(len(parsedObjects(t, readFile(t, filepath.Join(dir, m.FixtureName())))))
				if l := loaded[i]; l.Label != m.Label || l.Rows != want {
					t.Errorf("loaded %+v, want %s with %d rows", l, m.Label, want)
				}
			}
			checkSampleLoaded(t, db)
			if got := schemaObjects(t, db); !reflect.DeepEqual(got, wantSchema) {
				t.Errorf("indexes and constraints after the parallel load:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantSchema, "\n"))
			}
			if got := modelSequences(t, db); !reflect.DeepEqual(got, wantSeqs) {
				t.Errorf("sequences %v, want %v", got, wantSeqs)
			}
			if markerExists(t, db) {
				t.Errorf("table %s left behind", markerTable)
			}
		})
	}
}

// TestLoadParallelSequences: a parallel load moves each model's id sequence where a
// one-transaction load does, past the largest pk loaded (back to its start for an empty
// fixture), wherever the sequences were before.
func TestLoadParallelSequences(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	ta := model(t, "accounts.translationassignment") // no other model refers to it
	withEmpty := func(fixtures []LoadFixture) []LoadFixture {
		for i := range fixtures {
			if fixtures[i].Model.Label == ta.Label {
				fixtures[i] = bytesFixture(ta, []byte("[]"))
			}
		}
		return fixtures
	}
	db := openT(t, samplePostgres(t))
	emptyPlatform(t, db)
	load(t, db, withEmpty(fileFixtures(dir)), LoadOptions{})
	want := modelSequences(t, db)
	if got := want[ta.Table+"_id_seq"]; got != "unused" {
		t.Fatalf("the empty table's sequence is at %s after a one-transaction load, want unused", got)
	}
	emptyPlatform(t, db)
	for _, m := range platform.Default.Models {
		q := "SELECT setval(pg_get_serial_sequence($1, $2), 424242)"
		if _, err := db.pool.Exec(context.Background(), q, quote(m.Table), m.PK.Column); err != nil {
			t.Fatal(err)
		}
	}
	load(t, db, withEmpty(weighedFixtures(t, dir)), LoadOptions{Jobs: 2})
	if got := modelSequences(t, db); !reflect.DeepEqual(got, want) {
		t.Errorf("sequences %v, want %v", got, want)
	}
}

// TestLoadParallelDecodesAhead: the first copies' fixtures, opened while the preparation
// runs, are all closed again, whether their copies took them or the check failed first; and
// a fixture that cannot be opened then is opened again by its copy, which loads it.
func TestLoadParallelDecodesAhead(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	db := openT(t, samplePostgres(t))
	// counted wraps the fixtures: the first open of each of the two largest (those a load of
	// two jobs decodes ahead) fails; every open that succeeds counts itself and its close.
	counted := func(fixtures []LoadFixture) (opened, closed, refused *atomic.Int32) {
		opened, closed, refused = new(atomic.Int32), new(atomic.Int32), new(atomic.Int32)
		first := largestFirst(fixtures)[:2]
		for i := range fixtures {
			open := fixtures[i].Open
			var tried atomic.Bool
			tried.Store(!slices.Contains(first, i))
			fixtures[i].Open = func() (io.ReadCloser, error) {
				if tried.CompareAndSwap(false, true) {
					refused.Add(1)
					return nil, errors.New("not yet")
				}
				opened.Add(1)
				rc, err := open()
				return closeCounter{rc, closed}, err
			}
		}
		return opened, closed, refused
	}

	t.Run("refused ahead, opened by the copies", func(t *testing.T) {
		emptyPlatform(t, db)
		fixtures := weighedFixtures(t, dir)
		opened, closed, refused := counted(fixtures)
		load(t, db, fixtures, LoadOptions{Jobs: 2})
		checkSampleLoaded(t, db)
		if refused.Load() != 2 || opened.Load() != int32(len(fixtures)) || closed.Load() != opened.Load() {
			t.Errorf("%d opens refused, %d opened, %d closed: want 2 refused, then every fixture opened and closed once", refused.Load(), opened.Load(), closed.Load())
		}
	})
	t.Run("opened ahead, the check fails", func(t *testing.T) {
		emptyPlatform(t, db)
		fixtures := weighedFixtures(t, dir)
		opened, closed, _ := counted(fixtures)
		for _, i := range largestFirst(fixtures)[:2] {
			fixtures[i].Open() // spends the refusal: decoding ahead opens these two
		}
		_, err := db.Load(context.Background(), fixtures, LoadOptions{Jobs: 2, Verify: func(context.Context) error { return errTampered }})
		if !errors.Is(err, errTampered) || opened.Load() != 2 || closed.Load() != 2 {
			t.Fatalf("err = %v, %d opened, %d closed: want the check's error, the two largest fixtures opened and closed", err, opened.Load(), closed.Load())
		}
	})
}

// TestLoadParallelRefusesRows refuses (exit 2) a parallel load into a table that has rows,
// naming the table and its count, and changes nothing; the early check says the same.
func TestLoadParallelRefusesRows(t *testing.T) {
	db := openT(t, samplePostgres(t))
	ctx := context.Background()
	emptyPlatform(t, db)
	insertLanguages(t, db, 7, 8, 9)
	before := exportAll(t, db, fixture.Format{Indent: 2})
	schema := schemaObjects(t, db)
	checkErr := db.CheckParallelTarget(ctx, platform.Default.Models)
	_, loadErr := db.Load(ctx, fileFixtures(filepath.Join(testdata, "sample-fixtures")), LoadOptions{Jobs: 2})
	for name, err := range map[string]error{"check": checkErr, "load": loadErr} {
		var ne *NotEmptyError
		if !errors.As(err, &ne) || ne.Table != "books_language" || ne.Rows != 3 {
			t.Fatalf("%s: got %v, want a refusal naming books_language and its 3 rows", name, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "books_language") || !strings.Contains(msg, "3 rows") || !strings.Contains(msg, "nothing was changed") {
			t.Errorf("%s: message %q", name, msg)
		}
		if code := outcome.Of(err).Code; code != 2 {
			t.Errorf("%s: exit code %d, want 2", name, code)
		}
	}
	if got := exportAll(t, db, fixture.Format{Indent: 2}); !reflect.DeepEqual(got, before) {
		t.Error("the refused load changed rows")
	}
	if !reflect.DeepEqual(schemaObjects(t, db), schema) || markerExists(t, db) {
		t.Error("the refused load changed the schema")
	}
}

// TestLoadParallelFailsMidwayAndReruns stops a parallel load after some tables committed (as
// a crash would): the error says the database is half-restored and to rerun with --jobs; a
// one-transaction load is refused meanwhile; the rerun empties the loaded tables, loads
// everything and puts every index and foreign key back.
func TestLoadParallelFailsMidwayAndReruns(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	for _, after := range []int{1, 4, len(platform.Default.Models)} {
		t.Run(fmt.Sprintf("after %d tables", after), func(t *testing.T) {
			db := openT(t, samplePostgres(t))
			ctx := context.Background()
			schema := schemaObjects(t, db)
			emptyPlatform(t, db)
			var done atomic.Int32 // the jobs call the hook concurrently
			setParallelHook(t, func(label string) error {
				if done.Add(1) == int32(after) {
					return fmt.Errorf("killed after loading %s", label)
				}
				return nil
			})
			_, err := db.Load(ctx, weighedFixtures(t, dir), LoadOptions{Jobs: 2})
			var half *HalfRestoredError
			if !errors.As(err, &half) || !strings.Contains(err.Error(), "half-restored") || !strings.Contains(err.Error(), "rerun the restore with --jobs") {
				t.Fatalf("got %v, want a half-restored error that says to rerun with --jobs", err)
			}
			if !markerExists(t, db) {
				t.Fatalf("no %s after the failed load", markerTable)
			}
			// Each hook call followed a commit: that many tables hold their rows.
			filled := 0
			for _, m := range platform.Default.Models {
				var rows int64
				if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM "+quote(m.Table)).Scan(&rows); err != nil {
					t.Fatal(err)
				}
				if rows > 0 {
					filled++
				}
			}
			if filled < after || filled == len(platform.Default.Models) && after < filled {
				t.Fatalf("%d tables hold rows after a failure after %d: the failure was not midway", filled, after)
			}
			if _, err := db.Load(ctx, fileFixtures(dir), LoadOptions{}); outcome.Of(err).Code != 2 || !strings.Contains(fmt.Sprint(err), "--jobs") {
				t.Errorf("a one-transaction load into the half-restored database: %v, want a refusal naming --jobs", err)
			}
			setParallelHook(t, nil)
			load(t, db, weighedFixtures(t, dir), LoadOptions{Jobs: 2})
			checkSampleLoaded(t, db)
			if got := schemaObjects(t, db); !reflect.DeepEqual(got, schema) {
				t.Errorf("indexes and constraints after the rerun:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(schema, "\n"))
			}
			if markerExists(t, db) {
				t.Errorf("table %s left behind by the rerun", markerTable)
			}
		})
	}
}

// TestLoadParallelWhereDropsAreRefused: the preparation's drops are sent together; where
// the server refuses one, the load takes the statement-by-statement path: indexes a view
// depends on are kept (the load completes, the schema as it was), and without the tables'
// ownership --jobs is refused, nothing changed.
func TestLoadParallelWhereDropsAreRefused(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	t.Run("a view depends on a primary key", func(t *testing.T) {
		url := samplePostgres(t)
		// GROUP BY the pk makes the view depend on books_chapter_pkey.
		execScript(t, url, "CREATE VIEW chapter_titles AS SELECT c.id, c.title FROM books_chapter c GROUP BY c.id")
		db := openT(t, url)
		schema := schemaObjects(t, db)
		emptyPlatform(t, db)
		load(t, db, weighedFixtures(t, dir), LoadOptions{Jobs: 2})
		checkSampleLoaded(t, db)
		if got := schemaObjects(t, db); !reflect.DeepEqual(got, schema) {
			t.Errorf("indexes and constraints after the load:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(schema, "\n"))
		}
		var titles int
		if err := db.pool.QueryRow(context.Background(), "SELECT count(*) FROM chapter_titles").Scan(&titles); err != nil || titles == 0 {
			t.Errorf("the view: %d rows, %v", titles, err)
		}
		if markerExists(t, db) {
			t.Errorf("table %s left behind", markerTable)
		}
	})
	t.Run("not the tables' owner", func(t *testing.T) {
		url := samplePostgres(t)
		owner := openT(t, url)
		emptyPlatform(t, owner)
		role := fmt.Sprintf("wnb_loader_%d", time.Now().UnixNano())
		execScript(t, url, fmt.Sprintf(`CREATE ROLE %[1]s LOGIN;
			GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO %[1]s;
			GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO %[1]s;
			GRANT CREATE ON SCHEMA public TO %[1]s`, role))
		t.Cleanup(func() { execScript(t, url, fmt.Sprintf("DROP OWNED BY %[1]s; DROP ROLE %[1]s", role)) })
		schema := schemaObjects(t, owner)
		db := openT(t, strings.Replace(url, "postgres://postgres@", "postgres://"+role+"@", 1))
		_, err := db.Load(context.Background(), weighedFixtures(t, dir), LoadOptions{Jobs: 2})
		if err == nil || !strings.Contains(err.Error(), "needs their owner") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("got %v, want a refusal saying --jobs needs the tables' owner", err)
		}
		if got := schemaObjects(t, owner); !reflect.DeepEqual(got, schema) || markerExists(t, owner) {
			t.Error("the refused load changed the schema")
		}
		var rows int64
		if err := owner.pool.QueryRow(context.Background(), "SELECT count(*) FROM books_chapter").Scan(&rows); err != nil || rows != 0 {
			t.Errorf("books_chapter holds %d rows after the refusal (%v)", rows, err)
		}
	})
}

// TestLoadParallelNamesTheFailingStatement: a table's keys and constraints go back in one
// round trip each; when one fails, the error names that one, not the whole batch, and the
// load is half-restored.
func TestLoadParallelNamesTheFailingStatement(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	chapter := model(t, "books.chapter")
	chapters := readFile(t, filepath.Join(dir, chapter.FixtureName()))
	tests := []struct {
		name      string
		from, to  string // the edit of the chapters' fixture
		want, not string // in the error; the batch's other statements, never
	}{
		{"a dangling foreign key", `"book": 1,`, `"book": 999,`,
			"check foreign key books_chapter_book_id_", "translated_from_id"},
		{"a duplicate primary key", `"pk": 2,`, `"pk": 1,`,
			"(ALTER TABLE books_chapter ADD CONSTRAINT books_chapter_pkey PRIMARY KEY (id))", "UNIQUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := bytes.Replace(chapters, []byte(tt.from), []byte(tt.to), 1)
			if bytes.Equal(bad, chapters) {
				t.Fatal("the sample chapters changed: edit the test")
			}
			db := openT(t, samplePostgres(t))
			emptyPlatform(t, db)
			fixtures := weighedFixtures(t, dir)
			for i, f := range fixtures {
				if f.Model.Label == chapter.Label {
					fixtures[i].Open = bytesFixture(chapter, bad).Open
				}
			}
			_, err := db.Load(context.Background(), fixtures, LoadOptions{Jobs: 2})
			var half *HalfRestoredError
			if !errors.As(err, &half) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.not) {
				t.Fatalf("got %v, want a half-restored error naming %q (and not %q)", err, tt.want, tt.not)
			}
		})
	}
}

// TestLoadParallelSQLite: --jobs > 1 on SQLite is a usage error (exit 2), before any change.
func TestLoadParallelSQLite(t *testing.T) {
	db := openT(t, sampleSQLite(t))
	before := exportAll(t, db, fixture.Format{Indent: 2})
	_, err := db.Load(context.Background(), fileFixtures(filepath.Join(testdata, "sample-fixtures", "sqlite")), LoadOptions{Jobs: 2})
	if outcome.Of(err).Status != outcome.Usage || !strings.Contains(fmt.Sprint(err), "--jobs") {
		t.Fatalf("got %v, want a usage error naming --jobs", err)
	}
	if err := db.CheckParallelTarget(context.Background(), platform.Default.Models); outcome.Of(err).Status != outcome.Usage {
		t.Errorf("check: got %v, want a usage error", err)
	}
	if got := exportAll(t, db, fixture.Format{Indent: 2}); !reflect.DeepEqual(got, before) {
		t.Error("the refused load changed rows")
	}
}

// TestLoadFreezesRows: a replace truncates the tables and copies frozen rows into them, in
// one transaction (and so does each table of a parallel load): every page is all-frozen
// right after the load, with no vacuum.
func TestLoadFreezesRows(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	for _, jobs := range []int{1, 2} {
		t.Run(fmt.Sprintf("jobs=%d", jobs), func(t *testing.T) {
			db := openT(t, samplePostgres(t))
			ctx := context.Background()
			if _, err := db.pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_visibility"); err != nil {
				t.Fatalf("pg_visibility: %v", err)
			}
			if jobs > 1 {
				emptyPlatform(t, db)
			}
			load(t, db, fileFixtures(dir), LoadOptions{Jobs: jobs})
			for _, m := range platform.Default.Models {
				var pages, frozen int64
				q := "SELECT count(*), count(*) FILTER (WHERE all_frozen) FROM pg_visibility_map($1::regclass)"
				if err := db.pool.QueryRow(ctx, q, m.Table).Scan(&pages, &frozen); err != nil {
					t.Fatal(err)
				}
				if pages == 0 || frozen != pages {
					t.Errorf("%s: %d of %d pages all-frozen after the load", m.Label, frozen, pages)
				}
			}
			checkSampleLoaded(t, db)
		})
	}
}

// TestLoadParallelKeepsOddDefinitions: an index whose definition holds quotes and
// backslashes goes through the marker (written as SQL literals) unchanged, also where the
// server reads backslashes in plain literals as escapes (standard_conforming_strings off): a
// rerun after a failure builds it again as it was.
func TestLoadParallelKeepsOddDefinitions(t *testing.T) {
	url := samplePostgres(t)
	execScript(t, url, `CREATE INDEX chapter_odd ON books_chapter (title) WHERE title ~ E'\\d\\\\' AND title <> 'it''s';
		DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET standard_conforming_strings = off', current_database()); END $$`)
	db := openT(t, url)
	var scs string
	if err := db.pool.QueryRow(context.Background(), "SHOW standard_conforming_strings").Scan(&scs); err != nil || scs != "off" {
		t.Fatalf("standard_conforming_strings %q (%v), want off", scs, err)
	}
	schema := schemaObjects(t, db)
	if !slices.ContainsFunc(schema, func(s string) bool { return strings.Contains(s, "chapter_odd") && strings.Contains(s, `\`) }) {
		t.Fatalf("no odd index among %v", schema)
	}
	emptyPlatform(t, db)
	// Failed after the first table: the rerun finds what to build again in the marker only.
	setParallelHook(t, func(label string) error { return fmt.Errorf("killed after loading %s", label) })
	fixtures := weighedFixtures(t, filepath.Join(testdata, "sample-fixtures"))
	if _, err := db.Load(context.Background(), fixtures, LoadOptions{Jobs: 2}); err == nil {
		t.Fatal("the load did not fail midway")
	}
	setParallelHook(t, nil)
	other := openT(t, url) // a process of its own: what the first one had in memory is gone
	load(t, other, fixtures, LoadOptions{Jobs: 2})
	if got := schemaObjects(t, other); !reflect.DeepEqual(got, schema) {
		t.Errorf("indexes and constraints after the rerun:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(schema, "\n"))
	}
	for _, s := range []string{"plain", "it's", `a\b`, `\'`, `'\\'`, "ünï"} {
		var got string
		if err := db.pool.QueryRow(context.Background(), "SELECT "+literal(s)).Scan(&got); err != nil || got != s {
			t.Errorf("literal(%q) reads back as %q (%v)", s, got, err)
		}
	}
}
