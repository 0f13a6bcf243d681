package database

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
)

// errTampered is the verdict of a check that found a fixture changed.
var errTampered = errors.New("db_books_chapter.json is corrupt")

// lastOpenedFixtures are fixtures whose last Open closes opened: a check that waits for it
// fails after the load has copied every other table, whatever the scheduling.
func lastOpenedFixtures(dir string, opened chan struct{}) []LoadFixture {
	fixtures := fileFixtures(dir)
	last := &fixtures[len(fixtures)-1]
	open := last.Open
	last.Open = func() (io.ReadCloser, error) {
		close(opened)
		return open()
	}
	return fixtures
}

// TestLoadVerify: a one-transaction load runs its Verify alongside the COPYs and commits only
// once it passed; a check that fails once every table was copied rolls everything back (rows
// and sequences) and is the load's error. A parallel load (it commits table by table) runs
// the check alongside its preparation and commits that only once it passed, so a failed
// check changes nothing there either; a check that passes lets both loads finish.
func TestLoadVerify(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	db := openT(t, samplePostgres(t))
	before := exportAll(t, db, fixture.Format{Indent: 2})
	seqs := sequenceStates(t, db)

	t.Run("fails after the copies", func(t *testing.T) {
		opened := make(chan struct{})
		verify := tamperedOnceClosed(opened)
		_, err := db.Load(context.Background(), lastOpenedFixtures(dir, opened), LoadOptions{Verify: verify})
		if !errors.Is(err, errTampered) {
			t.Fatalf("err = %v, want the check's", err)
		}
		compareExports(t, exportAll(t, db, fixture.Format{Indent: 2}), before)
		if got := sequenceStates(t, db); !reflect.DeepEqual(got, seqs) {
			t.Errorf("sequences %v after the failed check, want %v", got, seqs)
		}
	})

	t.Run("its error comes first", func(t *testing.T) {
		// The load fails on its own (a truncated fixture) as a corrupt file would make it.
		chapter := model(t, "books.chapter")
		data := readFile(t, filepath.Join(dir, chapter.FixtureName()))
		bad := []LoadFixture{bytesFixture(chapter, data[:len(data)/2])}
		_, err := db.Load(context.Background(), bad, LoadOptions{Verify: func(context.Context) error { return errTampered }})
		if !errors.Is(err, errTampered) {
			t.Fatalf("err = %v, want the check's", err)
		}
		compareExports(t, exportAll(t, db, fixture.Format{Indent: 2}), before)
	})

	t.Run("parallel load checks alongside its preparation", func(t *testing.T) {
		emptyPlatform(t, db)
		indexes := indexCount(t, db)
		empty := exportAll(t, db, fixture.Format{Indent: 2})
		// The check fails once the preparation (keys and indexes dropped, marker written) is
		// done: a load that ran it first would wait here for ever. The first copies' fixtures
		// are read meanwhile, and nothing of them written.
		prepared := make(chan struct{})
		prepareHook = func() { close(prepared) }
		defer func() { prepareHook = nil }()
		verify := tamperedOnceClosed(prepared)
		_, err := db.Load(context.Background(), fileFixtures(dir), LoadOptions{Jobs: 2, Verify: verify})
		if !errors.Is(err, errTampered) || markerExists(t, db) {
			t.Fatalf("err = %v, marker %v: want the check's error before anything", err, markerExists(t, db))
		}
		compareExports(t, exportAll(t, db, fixture.Format{Indent: 2}), empty)
		if got := indexCount(t, db); got != indexes {
			t.Fatalf("%d indexes after the failed check, want %d", got, indexes)
		}
	})

	for _, jobs := range []int{1, 2} {
		emptyPlatform(t, db)
		var checked atomic.Bool
		load(t, db, fileFixtures(dir), LoadOptions{Jobs: jobs, Verify: func(context.Context) error { checked.Store(true); return nil }})
		if !checked.Load() {
			t.Fatalf("jobs %d: the check did not run", jobs)
		}
		checkSampleLoaded(t, db)
	}
}

// indexCount is the number of indexes of the current schema.
func indexCount(t *testing.T, db *DB) int {
	t.Helper()
	var n int
	if err := db.pool.QueryRow(context.Background(), "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLoadVerifyAfterRead: with VerifyAfterRead a one-transaction load runs its check once it
// has read every fixture (the check hashes what the load read), before the commit; a failed
// check rolls everything back, and its error comes first even when the load failed as well.
func TestLoadVerifyAfterRead(t *testing.T) {
	dir := filepath.Join(testdata, "sample-fixtures")
	db := openT(t, samplePostgres(t))
	before := exportAll(t, db, fixture.Format{Indent: 2})

	t.Run("after every read, before the commit", func(t *testing.T) {
		var opened, closed atomic.Int32
		fixtures := fileFixtures(dir)
		for i := range fixtures {
			open := fixtures[i].Open
			fixtures[i].Open = func() (io.ReadCloser, error) {
				opened.Add(1)
				rc, err := open()
				return closeCounter{rc, &closed}, err
			}
		}
		var early bool
		verify := func(context.Context) error {
			early = closed.Load() != int32(len(fixtures))
			return errTampered
		}
		_, err := db.Load(context.Background(), fixtures, LoadOptions{Verify: verify, VerifyAfterRead: true})
		if !errors.Is(err, errTampered) || early {
			t.Fatalf("err = %v, check before every fixture was read and closed: %v", err, early)
		}
		compareExports(t, exportAll(t, db, fixture.Format{Indent: 2}), before)
	})

	t.Run("its error comes first", func(t *testing.T) {
		chapter := model(t, "books.chapter")
		data := readFile(t, filepath.Join(dir, chapter.FixtureName()))
		bad := []LoadFixture{bytesFixture(chapter, data[:len(data)/2])}
		_, err := db.Load(context.Background(), bad, LoadOptions{VerifyAfterRead: true, Verify: func(context.Context) error { return errTampered }})
		if !errors.Is(err, errTampered) {
			t.Fatalf("err = %v, want the check's", err)
		}
		compareExports(t, exportAll(t, db, fixture.Format{Indent: 2}), before)
	})

	emptyPlatform(t, db)
	var checked atomic.Int32
	load(t, db, fileFixtures(dir), LoadOptions{VerifyAfterRead: true, Verify: func(context.Context) error { checked.Add(1); return nil }})
	if checked.Load() != 1 {
		t.Fatalf("the check ran %d times, want once", checked.Load())
	}
	checkSampleLoaded(t, db)
}

// closeCounter counts its Close calls.
type closeCounter struct {
	io.ReadCloser
	n *atomic.Int32
}

func (c closeCounter) Close() error {
	c.n.Add(1)
	return c.ReadCloser.Close()
}

// tamperedOnceClosed is a check that fails as a tampered fixture would, once ch is closed
// (until then it waits, so a load that ran it first would wait for ever).
func tamperedOnceClosed(ch <-chan struct{}) func(context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-ch:
			return errTampered
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
