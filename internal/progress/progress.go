// Package progress shows a run's progress to a person: live bars with rates and ETA on a
// terminal (vbauerster/mpb), a plain log line per phase milestone elsewhere, nothing when quiet.
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

// Mode is how progress is shown.
type Mode int

const (
	// Quiet shows nothing.
	Quiet Mode = iota
	// Lines logs a line when a phase starts, every quarter of the way, and when it ends.
	Lines
	// Bars draws live bars (a terminal only).
	Bars
)

// Reporter receives a run's progress. It is safe for concurrent use; the zero Mode (Quiet)
// costs nothing.
type Reporter struct {
	mode   Mode
	log    *slog.Logger
	p      *mpb.Progress
	mu     sync.Mutex
	phases map[string]*phase
}

type phase struct {
	total, done int64
	bar         *mpb.Bar
	start       time.Time
	lastQuarter int64
}

// New makes a reporter writing bars to w (Bars) or lines to log (Lines).
func New(w io.Writer, mode Mode, log *slog.Logger) *Reporter {
	r := &Reporter{mode: mode, log: log, phases: map[string]*phase{}}
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
	ph := &phase{total: total, start: time.Now()}
	r.phases[name] = ph
	switch r.mode {
	case Bars:
		unit := decor.SizeB1024(0)
		counter := decor.CountersKibiByte("% .1f / % .1f")
		rate := decor.EwmaSpeed(unit, "% .1f", 30)
		if name == Rows {
			counter = decor.CountersNoUnit("%d / %d")
			rate = decor.EwmaSpeed(nil, "%.0f rows/s", 30)
		}
		ph.bar = r.p.AddBar(total,
			mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-14s", name)), counter),
			mpb.AppendDecorators(rate, decor.Name("  ETA "), decor.EwmaETA(decor.ET_STYLE_GO, 30)),
		)
	case Lines:
		r.log.Info("progress", "phase", name, "total", total)
	}
}

// Add records work done in a phase.
func (r *Reporter) Add(name string, n int64) {
	if r == nil || r.mode == Quiet || n == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ph := r.phases[name]
	if ph == nil {
		return
	}
	ph.done += n
	switch r.mode {
	case Bars:
		ph.bar.EwmaIncrInt64(n, time.Since(ph.start)/time.Duration(max(ph.done/n, 1)))
	case Lines:
		if q := ph.done * 4 / ph.total; q > ph.lastQuarter {
			ph.lastQuarter = q
			el := time.Since(ph.start)
			r.log.Info("progress", "phase", name, "done", ph.done, "total", ph.total,
				"percent", min(100, ph.done*100/ph.total), "elapsed", el.Round(time.Millisecond))
		}
	}
}

// Close finishes the display: bars are completed (or aborted when failed) and drawn once more.
func (r *Reporter) Close(failed bool) {
	if r == nil || r.p == nil {
		return
	}
	r.mu.Lock()
	for _, ph := range r.phases {
		if failed {
			ph.bar.Abort(false)
		} else {
			ph.bar.SetTotal(ph.done, true)
		}
	}
	r.mu.Unlock()
	r.p.Wait()
}
