// Package progress shows a run's progress to a person: live bars with rates and ETA on a
// terminal (vbauerster/mpb), a plain log line at most every LineEvery elsewhere, nothing when
// quiet.
//
// Rates are measured over the last RateWindow, not since the phase began, so a phase that
// starts slowly (planning, a big first table) does not read slow for the rest of the run.
// Work is counted as the coordinator learns of it: rows and file bytes per task result, so a
// bar moves a task at a time. A bar never shows more done than its total: when the work
// turns out larger than announced the total grows with it, and a phase that ends well ends
// exactly at its total.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Phases a run reports.
const (
	Rows    = "database rows"
	Files   = "file bytes"
	Archive = "archive bytes"
)

// RateWindow is how far back rates look.
const RateWindow = 5 * time.Second

// LineEvery is the least time between two progress lines (Lines mode).
const LineEvery = 10 * time.Second

// Mode is how progress is shown.
type Mode int

const (
	// Quiet shows nothing.
	Quiet Mode = iota
	// Lines logs a progress line at most every LineEvery, and one when the run ends.
	Lines
	// Bars draws live bars (a terminal only).
	Bars
)

// Reporter receives a run's progress. It is safe for concurrent use; the zero Mode (Quiet)
// costs nothing.
type Reporter struct {
	mode     Mode
	log      *slog.Logger
	p        *mpb.Progress
	now      func() time.Time
	mu       sync.Mutex
	phases   map[string]*phase
	order    []string
	lastLine time.Time
}

// New makes a reporter writing bars to w (Bars) or lines to log (Lines).
func New(w io.Writer, mode Mode, log *slog.Logger) *Reporter {
	r := &Reporter{mode: mode, log: log, phases: map[string]*phase{}, now: time.Now}
	if r.log == nil {
		r.log = slog.Default()
	}
	if mode == Bars {
		r.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
	}
	return r
}

// Total announces how much work a phase has (0: nothing to do, the phase is not shown).
func (r *Reporter) Total(name string, total int64) {
	if r == nil || r.mode == Quiet || total <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	ph := newPhase(total, now)
	if _, ok := r.phases[name]; !ok {
		r.order = append(r.order, name)
	}
	r.phases[name] = ph
	switch r.mode {
	case Bars:
		ph.bar = r.addBar(name, ph)
	case Lines:
		r.maybeLine(now)
	}
}

// addBar draws a phase's bar; its rate and ETA come from the phase's window.
func (r *Reporter) addBar(name string, ph *phase) *mpb.Bar {
	counter := decor.CountersKibiByte("% .1f / % .1f")
	unit := "/s"
	if name == Rows {
		counter = decor.CountersNoUnit("%d / %d")
		unit = " rows/s"
	}
	// The decorators run in the bar's goroutine: they take only the phase's lock, which is
	// never held while a bar is called.
	rate := decor.Any(func(decor.Statistics) string {
		ph.mu.Lock()
		defer ph.mu.Unlock()
		return formatRate(ph.rate(r.now()), name != Rows) + unit
	})
	eta := decor.Any(func(decor.Statistics) string {
		ph.mu.Lock()
		defer ph.mu.Unlock()
		return "  ETA " + formatETA(ph.eta(r.now()))
	})
	return r.p.AddBar(ph.total,
		mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-14s", name)), counter),
		mpb.AppendDecorators(rate, eta),
	)
}

// Add records work done in a phase.
func (r *Reporter) Add(name string, n int64) {
	if r == nil || r.mode == Quiet || n == 0 {
		return
	}
	r.mu.Lock()
	ph := r.phases[name]
	if ph == nil {
		r.mu.Unlock()
		return
	}
	now := r.now()
	ph.mu.Lock()
	grew := ph.add(n, now)
	total, done := ph.total, ph.done
	ph.mu.Unlock()
	if r.mode == Lines {
		r.maybeLine(now)
	}
	r.mu.Unlock()
	if r.mode == Bars {
		if grew {
			ph.bar.SetTotal(total, false)
		}
		ph.bar.SetCurrent(done)
	}
}

// maybeLine logs the phases' progress unless a line went out less than LineEvery ago.
func (r *Reporter) maybeLine(now time.Time) {
	if !r.lastLine.IsZero() && now.Sub(r.lastLine) < LineEvery {
		return
	}
	r.lastLine = now
	r.logPhases("progress", now)
}

func (r *Reporter) logPhases(msg string, now time.Time) {
	attrs := make([]any, 0, len(r.order))
	for _, name := range r.order {
		ph := r.phases[name]
		ph.mu.Lock()
		attrs = append(attrs, slog.Group(phaseKey(name), "done", ph.done, "total", ph.total,
			"percent", percent(ph.done, ph.total), "rate", formatRate(ph.rate(now), name != Rows),
			"eta", formatETA(ph.eta(now))))
		ph.mu.Unlock()
	}
	r.log.Info(msg, attrs...)
}

// Close finishes the display: bars end exactly at what was done (or are aborted when the
// run failed) and are drawn once more; in Lines mode one last line says where each phase
// ended, its total what was done when the run succeeded.
func (r *Reporter) Close(failed bool) {
	if r == nil || r.mode == Quiet {
		return
	}
	r.mu.Lock()
	if r.mode == Lines {
		if !failed {
			r.settle()
		}
		if len(r.order) > 0 {
			r.logPhases("progress at the end", r.now())
		}
		r.mu.Unlock()
		return
	}
	type end struct {
		bar  *mpb.Bar
		done int64
	}
	var ends []end
	for _, ph := range r.phases {
		ph.mu.Lock()
		ends = append(ends, end{ph.bar, ph.done})
		ph.mu.Unlock()
	}
	r.mu.Unlock()
	for _, e := range ends {
		if failed {
			e.bar.Abort(false)
		} else {
			e.bar.SetTotal(e.done, true)
		}
	}
	r.p.Wait()
}

// settle makes each phase's total what was done: a run that succeeded did all its work,
// whatever was announced (a database's rows are the server's estimate).
func (r *Reporter) settle() {
	for _, ph := range r.phases {
		ph.mu.Lock()
		ph.total = ph.done
		ph.mu.Unlock()
	}
}

// phase is one phase's counts and the samples its rate is measured over.
type phase struct {
	mu          sync.Mutex // guards the counts and samples; never held while a bar is called
	total, done int64
	start       time.Time
	samples     []sample // oldest first; the first may be older than the window
	bar         *mpb.Bar
}

type sample struct {
	at   time.Time
	done int64
}

func newPhase(total int64, now time.Time) *phase {
	return &phase{total: total, start: now, samples: []sample{{now, 0}}}
}

// add counts n more done at now and reports whether the total had to grow to hold it.
func (ph *phase) add(n int64, now time.Time) (grew bool) {
	ph.done += n
	if ph.done > ph.total {
		ph.total, grew = ph.done, true
	}
	ph.samples = append(ph.samples, sample{now, ph.done})
	// Keep one sample at or before the window's start: what was done when the window began.
	cut := now.Add(-RateWindow)
	i := 0
	for i+1 < len(ph.samples) && !ph.samples[i+1].at.After(cut) {
		i++
	}
	ph.samples = ph.samples[i:]
	return grew
}

// rate is the work per second over the last RateWindow (since the phase began when it is
// younger); 0 when too little time has passed to tell.
func (ph *phase) rate(now time.Time) float64 {
	from := now.Add(-RateWindow)
	if from.Before(ph.start) {
		from = ph.start
	}
	el := now.Sub(from)
	if el < 100*time.Millisecond {
		return 0
	}
	// Done at the window's start: the newest sample at or before it.
	base := int64(0)
	for _, s := range ph.samples {
		if s.at.After(from) {
			break
		}
		base = s.done
	}
	return float64(ph.done-base) / el.Seconds()
}

// eta is the time the rest takes at the current rate; -1 when unknown.
func (ph *phase) eta(now time.Time) time.Duration {
	if ph.done >= ph.total {
		return 0
	}
	rate := ph.rate(now)
	if rate <= 0 {
		return -1
	}
	return time.Duration(float64(ph.total-ph.done) / rate * float64(time.Second))
}

func formatRate(rate float64, bytes bool) string {
	if !bytes {
		return fmt.Sprintf("%.0f", rate)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for rate >= 1024 && i < len(units)-1 {
		rate /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", rate, units[i])
}

func formatETA(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Second).String()
}

// phaseKey is a phase's key in log lines.
func phaseKey(name string) string {
	switch name {
	case Rows:
		return "rows"
	case Files:
		return "file_bytes"
	case Archive:
		return "archive_bytes"
	}
	return name
}

// percent is done of total in percent; nothing to do is all of it done.
func percent(done, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return done * 100 / total
}
