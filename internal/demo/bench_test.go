package demo

import (
	"context"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

// BenchmarkChapterRows measures row generation alone for the 1M-row benchmark table.
func BenchmarkChapterRows(b *testing.B) {
	p, err := newPlan(Options{Seed: 1, Users: 3, Authors: 2, Languages: 2, OnlyChapters: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	var ch table
	for _, t := range p.tables() {
		if t.name == "books_chapter" {
			ch = t
		}
	}
	next := ch.rows(enc{})
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := next(); !ok {
			b.Fatal("out of rows")
		}
	}
}

// BenchmarkFillPostgresChapters fills a books_chapter table of 100k rows per iteration.
func BenchmarkFillPostgresChapters(b *testing.B) {
	const rows = 100000
	o := Options{Seed: 1, Users: 3, Authors: 2, Languages: 2, OnlyChapters: rows}
	for b.Loop() {
		b.StopTimer()
		url := pgtest.URL(b)
		b.StartTimer()
		if _, err := Fill(context.Background(), url, b.TempDir(), o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
