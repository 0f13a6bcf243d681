package database

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// benchChapters is how many chapters the export benchmarks add to the sample.
const benchChapters = 100_000

const benchChaptersSQL = `INSERT INTO books_chapter (id, number, title, content_file, word_count, status,
	published_at, created_at, updated_at, book_id, translated_from_id)
	SELECT g, g, 'Chapter ' || g || ': 龍 "the" return', 'content/1/' || g || '.json', g %% 5000, 'published',
	%s, %s, %s, 1, NULL FROM generate_series(100, 100099) g`

func BenchmarkExportChaptersPostgres(b *testing.B) {
	url := samplePostgres(b)
	execScript(b, url, fmt.Sprintf(benchChaptersSQL, "now()", "now() - g * interval '1 minute'", "now()"))
	benchmarkExport(b, openT(b, url))
}

func BenchmarkExportChaptersSQLite(b *testing.B) {
	db := openT(b, sampleSQLite(b))
	q := `WITH RECURSIVE s(g) AS (SELECT 100 UNION ALL SELECT g + 1 FROM s WHERE g < 100099) ` +
		fmt.Sprintf(benchChaptersSQL, "'2024-01-02 03:04:05.678901'", "'2024-01-02 03:04:05'", "'2024-01-02 03:04:05.000001'")
	q = strings.ReplaceAll(q, "FROM generate_series(100, 100099) g", "FROM s")
	if _, err := db.sql.Exec(q); err != nil {
		b.Fatal(err)
	}
	benchmarkExport(b, db)
}

func benchmarkExport(b *testing.B, db *DB) {
	ctx := context.Background()
	m := model(b, "books.chapter")
	for _, f := range []fixture.Format{{}, {Indent: 2}} {
		b.Run(f.String(), func(b *testing.B) {
			var rows int64
			start := time.Now()
			for b.Loop() {
				n, err := db.Export(ctx, "", m, All, f, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				rows += n
			}
			b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
		})
	}
}

func BenchmarkLoadChaptersPostgres(b *testing.B) {
	benchmarkLoad(b, openT(b, samplePostgres(b)))
}

func BenchmarkLoadChaptersSQLite(b *testing.B) {
	benchmarkLoad(b, openT(b, sampleSQLite(b)))
}

// benchmarkLoad replaces the chapters with benchChapters rows from a fixture in memory.
func benchmarkLoad(b *testing.B, db *DB) {
	ctx := context.Background()
	emptyPlatform(b, db)
	var parents []platform.Model
	for _, l := range []string{"books.language", "books.author", "accounts.user", "books.book"} {
		parents = append(parents, model(b, l))
	}
	if _, err := db.Load(ctx, fileFixtures(filepath.Join(testdata, "sample-fixtures"), parents...), LoadOptions{}); err != nil {
		b.Fatal(err)
	}
	data := chaptersFixture(b, benchChapters, 1)
	m := model(b, "books.chapter")
	b.SetBytes(int64(len(data)))
	var rows int64
	start := time.Now()
	for b.Loop() {
		out, err := db.Load(ctx, []LoadFixture{bytesFixture(m, data)}, LoadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rows += out[0].Rows
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}

// BenchmarkAppendPGRow measures the client's cost of one books.chapter object from a row in
// the formats the export reads (binary integers and timestamps, text strings), without a
// server: on a shared machine the CPU time per row (cpu-ns/row) is steadier than the wall time.
func BenchmarkAppendPGRow(b *testing.B) {
	p, vals := benchChapterRow(b)
	buf := make([]byte, 0, 4096)
	var err error
	cpu := startCPU()
	for b.Loop() {
		if buf, err = p.appendPGRow(buf[:0], vals); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.SetBytes(int64(len(buf)))
}

// BenchmarkWritePGRow is BenchmarkAppendPGRow with the object handed to a fixture writer:
// built apart and copied in (WriteObject), or built in place in the writer's buffer
// (ObjectBuffer, what exportPostgres does).
func BenchmarkWritePGRow(b *testing.B) {
	p, vals := benchChapterRow(b)
	b.Run("copy", func(b *testing.B) {
		out := fixture.NewChunkWriter(io.Discard, fixture.Format{})
		buf := make([]byte, 0, 4096)
		var err error
		cpu := startCPU()
		for b.Loop() {
			if buf, err = p.appendPGRow(buf[:0], vals); err == nil {
				err = out.WriteObject(buf)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
	b.Run("in-place", func(b *testing.B) {
		out := fixture.NewChunkWriter(io.Discard, fixture.Format{})
		cpu := startCPU()
		for b.Loop() {
			dst, _ := out.ObjectBuffer()
			dst, err := p.appendPGRow(dst, vals)
			if err == nil {
				err = out.CommitObject(dst)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
}

// benchChapterRow is an export plan of books.chapter and one row of it in the formats the
// export reads.
func benchChapterRow(b *testing.B) (*exportPlan, [][]byte) {
	p, err := newExportPlan(model(b, "books.chapter"), Postgres)
	if err != nil {
		b.Fatal(err)
	}
	be := func(n int64, size int) []byte {
		v := make([]byte, size)
		for i := size - 1; i >= 0; i, n = i-1, n>>8 {
			v[i] = byte(n)
		}
		return v
	}
	p.bin = make([]binCol, len(p.fields)+1)
	vals := [][]byte{be(123456, 8)}
	for i, f := range p.fields {
		var v []byte
		switch f.kind {
		case kindInt:
			p.bin[i+1], v = binInt, be(int64(1000+i), 4)
		case kindDateTime:
			p.bin[i+1], v = binTimestamp, be(774_000_000_123_456+int64(i)*1e9, 8)
		case kindText:
			v = []byte("Chapter 123: The Return of the Dragon King " + f.name)
		}
		vals = append(vals, v)
	}
	return p, vals
}

// cpuClock is the process's CPU time at the start of a measurement.
type cpuClock struct{ ru syscall.Rusage }

func startCPU() *cpuClock {
	c := &cpuClock{}
	syscall.Getrusage(syscall.RUSAGE_SELF, &c.ru)
	return c
}

// report adds the CPU time per iteration since c started (cpu-ns/row).
func (c *cpuClock) report(b *testing.B) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := ru.Utime.Nano() + ru.Stime.Nano() - c.ru.Utime.Nano() - c.ru.Stime.Nano()
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/row")
}

// BenchmarkExportSilenceGuard compares an export over guarded connections (silence.go: a
// deadline set before every read) with one over bare connections, alternating (by hand:
// go test ./internal/database -run '^$' -bench SilenceGuard -count 3).
func BenchmarkExportSilenceGuard(b *testing.B) {
	url := samplePostgres(b)
	execScript(b, url, fmt.Sprintf(benchChaptersSQL, "now()", "now() - g * interval '1 minute'", "now()"))
	for _, s := range []struct {
		name    string
		silence time.Duration
	}{{"guarded", 0}, {"bare", -1}, {"guarded-again", 0}, {"bare-again", -1}} {
		db, err := OpenWith(context.Background(), url, Options{Silence: s.silence})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.name, func(b *testing.B) { benchmarkExport(b, db) })
		db.Close()
	}
}
