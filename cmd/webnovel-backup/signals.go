package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// stopGrace is how long a run may take to stop after the first Ctrl-C before the process
// exits anyway: a person who pressed Ctrl-C wants the prompt back. What a run leaves when
// cut short is never complete-looking: a backup is published only once whole, and a staging
// folder whose owner process is gone is listed as abandoned and pruned by
// `prune --prune-incomplete`.
const stopGrace = 1500 * time.Millisecond

// interrupts turns SIGINT and SIGTERM into a cancelled context: the first says "stopping…"
// on stderr at once and cancels; if the run has not ended its grace later (stopGrace, or
// longer where the command extended it), or at a second signal, the process exits with 130.
type interrupts struct {
	ctx      context.Context
	cancel   context.CancelFunc
	sigs     chan os.Signal
	stderr   io.Writer
	exit     func(code int)
	mu       sync.Mutex
	signaled bool
	grace    time.Duration
	done     chan struct{}
}

type interruptsKey struct{}

// extendStopGrace lets the command running under ctx take up to d to stop after the first
// signal (a worker's --shutdown-grace, during which its tasks in flight finish). It never
// shortens the default.
func extendStopGrace(ctx context.Context, d time.Duration) {
	in, ok := ctx.Value(interruptsKey{}).(*interrupts)
	if !ok {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.grace = max(in.grace, d)
}

// stopGraceNow is the grace the next first signal starts.
func (in *interrupts) stopGraceNow() time.Duration {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.grace
}

// watchInterrupts starts watching for SIGINT and SIGTERM; exit ends the process.
func watchInterrupts(parent context.Context, stderr io.Writer, exit func(int)) *interrupts {
	ctx, cancel := context.WithCancel(parent)
	in := &interrupts{cancel: cancel, sigs: make(chan os.Signal, 2), stderr: stderr, exit: exit, grace: stopGrace, done: make(chan struct{})}
	in.ctx = context.WithValue(ctx, interruptsKey{}, in)
	signal.Notify(in.sigs, os.Interrupt, syscall.SIGTERM)
	go in.loop()
	return in
}

func (in *interrupts) loop() {
	var grace <-chan time.Time
	for {
		select {
		case <-in.done:
			return
		case <-in.sigs:
			if in.markSignaled() {
				fmt.Fprintln(in.stderr, "\nstopping… (press Ctrl-C again to exit at once)")
				in.cancel()
				grace = time.After(in.stopGraceNow())
				continue
			}
			fmt.Fprintln(in.stderr, "exiting at once")
			in.exit(outcome.CodeInterrupted)
		case <-grace:
			fmt.Fprintln(in.stderr, "stopped (clean-up cut short: leftovers are listed as abandoned and removed by prune --prune-incomplete)")
			in.exit(outcome.CodeInterrupted)
		}
	}
}

// markSignaled records a signal and reports whether it is the first.
func (in *interrupts) markSignaled() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	first := !in.signaled
	in.signaled = true
	return first
}

// Signaled reports whether a signal has arrived.
func (in *interrupts) Signaled() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.signaled
}

// Stop ends the watch.
func (in *interrupts) Stop() {
	signal.Stop(in.sigs)
	close(in.done)
	in.cancel()
}

// runInterruptible runs one command line with Ctrl-C handling and returns its exit code: 130
// when a signal stopped a run that then failed, whatever the error it surfaced as.
func runInterruptible(args []string, stdout, stderr io.Writer, exit func(int), setup func(context.Context) func()) int {
	in := watchInterrupts(context.Background(), stderr, exit)
	defer in.Stop()
	done := func() {}
	if setup != nil {
		done = setup(in.ctx)
	}
	code := run(in.ctx, args, stdout, stderr)
	done()
	if code != outcome.CodeOK && in.Signaled() {
		return outcome.CodeInterrupted
	}
	return code
}
