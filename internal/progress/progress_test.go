package progress

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock for a reporter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                 { return c.t }
func (c *fakeClock) advance(d time.Duration)        { c.t = c.t.Add(d) }
func newClock() *fakeClock                          { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }
func withClock(r *Reporter, c *fakeClock) *Reporter { r.now = c.now; return r }

func TestRateAndETAOverWindow(t *testing.T) {
	type step struct {
		after time.Duration // since the previous step
		add   int64
	}
	tests := []struct {
		name  string
		total int64
		steps []step
		// wait is the time from the last step to when rate and ETA are read.
		wait     time.Duration
		wantRate float64
		wantETA  time.Duration // -1: unknown
	}{
		{"54k rows in the first second", 100000, []step{{time.Second, 54000}}, 0, 54000, 851 * time.Millisecond},
		{"a slow start does not slow the rate for ever", 200000, []step{{55 * time.Second, 1000}, {time.Second, 10000}, {4 * time.Second, 40000}}, 0,
			10000, 14900 * time.Millisecond},
		{"per task results: a task every two seconds", 10 << 20, []step{{2 * time.Second, 1 << 20}, {2 * time.Second, 1 << 20}, {2 * time.Second, 1 << 20}, {2 * time.Second, 1 << 20}}, 0,
			(3 << 20) / 5.0, 10 * time.Second},
		{"stalled for longer than the window", 100, []step{{time.Second, 50}}, 6 * time.Second, 0, -1},
		{"done", 100, []step{{time.Second, 100}}, 0, 100, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newClock()
			ph := newPhase(tt.total, clock.now())
			for _, s := range tt.steps {
				clock.advance(s.after)
				ph.add(s.add, clock.now())
			}
			clock.advance(tt.wait)
			if got := ph.rate(clock.now()); math.Abs(got-tt.wantRate) > tt.wantRate*0.01+0.001 {
				t.Errorf("rate %.1f/s, want %.1f/s", got, tt.wantRate)
			}
			got := ph.eta(clock.now())
			if tt.wantETA < 0 && got >= 0 || tt.wantETA >= 0 && (got-tt.wantETA).Abs() > tt.wantETA/100+time.Millisecond {
				t.Errorf("ETA %s, want %s", got, tt.wantETA)
			}
		})
	}
}

// Work larger than announced (an archive's headers and trailer) grows the total: the count
// never passes it, and a finished bar ends exactly at its total.
func TestBarsNeverPastTotal(t *testing.T) {
	var buf bytes.Buffer
	clock := newClock()
	r := withClock(New(&buf, Bars, nil), clock)
	r.Total(Archive, 4096)
	for range 5 {
		clock.advance(time.Second)
		r.Add(Archive, 1024)
	}
	ph := r.phases[Archive]
	if ph.done != 5120 || ph.total != 5120 {
		t.Errorf("done %d of %d, want 5120 of 5120", ph.done, ph.total)
	}
	r.Total(Rows, 20)
	r.Add(Rows, 20)
	r.Close(false)
	out := buf.String()
	for _, want := range []string{"archive bytes", "5.0 KiB / 5.0 KiB", "database rows", "20 / 20", "rows/s", "ETA"} {
		if !strings.Contains(out, want) {
			t.Errorf("bars lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "5.0 KiB / 4.0 KiB") {
		t.Errorf("a bar went past its total:\n%s", out)
	}
}

// Without a terminal: at most one progress line every LineEvery, whatever the rate of work,
// and one at the end.
func TestLinesAtMostEveryTenSeconds(t *testing.T) {
	var buf bytes.Buffer
	clock := newClock()
	r := withClock(New(nil, Lines, slog.New(slog.NewTextHandler(&buf, nil))), clock)
	r.Total(Rows, 6000)
	r.Total(Files, 1<<20)
	for range 600 { // one minute of work, an Add every 100ms
		clock.advance(100 * time.Millisecond)
		r.Add(Rows, 10)
	}
	r.Close(false)
	out := buf.String()
	if n := strings.Count(out, "msg=progress "); n > 7 { // at 0s, 10s, ..., 60s
		t.Errorf("%d progress lines in a minute, want at most 7:\n%s", n, out)
	}
	if !strings.Contains(out, `msg="progress at the end" rows.done=6000 rows.total=6000 rows.percent=100 rows.rate=100`) {
		t.Errorf("no end line with the exact total and the windowed rate:\n%s", out)
	}
}

// A total announced from an estimate (a database's rows) is settled at what was done when the
// run succeeds, and left as it was when it fails.
func TestLinesEndAtWhatWasDone(t *testing.T) {
	for _, tc := range []struct {
		failed bool
		want   string
	}{
		{false, `msg="progress at the end" rows.done=90 rows.total=90 rows.percent=100`},
		{true, `msg="progress at the end" rows.done=90 rows.total=100 rows.percent=90`},
	} {
		var buf bytes.Buffer
		r := withClock(New(nil, Lines, slog.New(slog.NewTextHandler(&buf, nil))), newClock())
		r.Total(Rows, 100)
		r.Add(Rows, 90)
		r.Close(tc.failed)
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("failed=%v: no %q in:\n%s", tc.failed, tc.want, buf.String())
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
