package progress

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLinesReportQuarters(t *testing.T) {
	var buf bytes.Buffer
	r := New(nil, Lines, slog.New(slog.NewTextHandler(&buf, nil)))
	r.Total(Rows, 100)
	for i := 0; i < 10; i++ {
		r.Add(Rows, 10)
	}
	r.Close(false)
	out := buf.String()
	if n := strings.Count(out, "phase=\"database rows\""); n != 5 { // start + 4 quarters
		t.Fatalf("%d lines:\n%s", n, out)
	}
	if !strings.Contains(out, "percent=100") {
		t.Fatalf("no completion line:\n%s", out)
	}
}

func TestBarsDrawRatesAndTotals(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, Bars, nil)
	r.Total(Files, 4096)
	r.Add(Files, 4096)
	r.Total(Rows, 20)
	r.Add(Rows, 20)
	r.Close(false)
	out := buf.String()
	for _, want := range []string{"file bytes", "4.0 KiB / 4.0 KiB", "database rows", "20 / 20", "rows/s"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bars lack %q:\n%s", want, out)
		}
	}
}

func TestQuietAndNilCostNothing(t *testing.T) {
	var r *Reporter
	r.Total(Rows, 1)
	r.Add(Rows, 1)
	r.Close(true)
	q := New(nil, Quiet, nil)
	q.Total(Rows, 10)
	q.Add(Rows, 10)
	q.Close(false)
	if len(q.phases) != 0 {
		t.Fatal("quiet reporter tracked phases")
	}
}
