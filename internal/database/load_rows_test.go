package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/fixture"
)

// languagesFixture returns a fixture of n languages with ids 1..n; bad, when > 0, is the id of
// one whose name is not a string.
func languagesFixture(n int, bad int) []byte {
	var b strings.Builder
	b.WriteString("[\n")
	for id := 1; id <= n; id++ {
		name := fmt.Sprintf(`"Language %d"`, id)
		if id == bad {
			name = `{"not": "a string"}`
		}
		fmt.Fprintf(&b, `{"model": "books.language", "pk": %d, "fields": {"code": "l%05d", "name": %s}}`, id, id, name)
		if id < n {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// TestLoadManyBatches loads fixtures of many read-ahead batches: every row arrives, in order
// of the fixture, and a bad object deep in the fixture is the one the error names, whichever
// decoder met it.
func TestLoadManyBatches(t *testing.T) {
	t.Run("default read-ahead", testLoadManyBatches)
	// A budget smaller than one batch: the reader waits for COPY at every batch.
	defer func(old int64) { bytesAhead = old }(bytesAhead)
	bytesAhead = 100
	t.Run("tiny read-ahead", testLoadManyBatches)
}

func testLoadManyBatches(t *testing.T) {
	lang := model(t, "books.language")
	const n = 10*batchObjects + 7
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		loaded := load(t, db, []LoadFixture{bytesFixture(lang, languagesFixture(n, 0))}, LoadOptions{})
		if loaded[0].Rows != n {
			t.Fatalf("loaded %d rows, want %d", loaded[0].Rows, n)
		}
		got := exportAll(t, db, fixture.Format{})["books.language"]
		for _, id := range []int{1, batchObjects, batchObjects + 1, n} {
			if want := fmt.Sprintf(`"code": "l%05d"`, id); !strings.Contains(string(got), want) {
				t.Errorf("export lacks %s", want)
			}
		}
		for _, bad := range []int{1, 3*batchObjects + 5, n} {
			before := exportAll(t, db, fixture.Format{})
			_, err := db.Load(ctx, []LoadFixture{bytesFixture(lang, languagesFixture(n, bad))}, LoadOptions{})
			var rowErr *RowError
			if !errors.As(err, &rowErr) || rowErr.PK != fmt.Sprint(bad) {
				t.Errorf("bad object %d: err = %v, want a RowError naming it", bad, err)
			}
			compareExports(t, exportAll(t, db, fixture.Format{}), before)
		}
	})
}

// BenchmarkRowSource measures the client's share of a load: a 100k-chapter fixture read,
// checked and encoded as a binary COPY stream (the column types read from a real server, the
// stream thrown away). cpu-ns/row is the process's CPU time per row, steadier than the wall
// time on a shared machine.
func BenchmarkRowSource(b *testing.B) {
	db := openT(b, samplePostgres(b))
	m := model(b, "books.chapter")
	p, err := newLoadPlan(m)
	if err != nil {
		b.Fatal(err)
	}
	cols, err := db.planColumnTypes(context.Background(), []*loadPlan{p})
	if err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	data := chaptersFixture(b, n, 1)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		src := newPGRowSource(context.Background(), fixture.NewReader(bytes.NewReader(data)), p, cols[0], false, 0)
		if _, err := src.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		if src.rows != n {
			b.Fatalf("%d rows, want %d", src.rows, n)
		}
		src.Close()
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N*n), "cpu-ns/row")
}
