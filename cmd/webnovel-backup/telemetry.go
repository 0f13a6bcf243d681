package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
)

// setupTracing installs tracing as the OTEL_* variables say (nothing without an endpoint) and
// returns what flushes it. A bad setting is a warning: tracing never stops a backup.
func setupTracing(ctx context.Context) (shutdown func()) {
	flush, err := telemetry.Setup(ctx, "webnovel-backup")
	if err != nil {
		fmt.Fprintln(os.Stderr, "warning: tracing is off:", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "warning: flush traces:", err)
		}
	}
}

// serveMetrics serves /metrics on addr until stop; nothing when addr is empty. A port another
// process holds (a second worker on the same host) is a warning, not a failure: the metrics
// are an aid, and the work goes on without them.
func serveMetrics(addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	s, err := telemetry.ListenMetrics(addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		slog.Warn("metrics endpoint is off: its address is in use; choose another with --metrics-addr", "addr", addr, "err", err)
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	slog.Info("metrics endpoint", "addr", s.Addr())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
	}, nil
}

// metricsFlagUsage is the --metrics-addr help shared by the commands that have it.
const metricsFlagUsage = "serve Prometheus metrics on this `address`, e.g. :9090 (empty: none; an address in use is a warning)"

// addStallFlag adds --stall-timeout to a command that runs tasks.
func addStallFlag(f *pflag.FlagSet, d *time.Duration) {
	f.DurationVar(d, "stall-timeout", coordinator.DefaultStallTimeout,
		"fail the run when no task has made progress for this long, naming the pending tasks and the workers subscribed; in-process workers cancel an export attempt that moved nothing for as long, a restore's database load that sent nothing for as long is rolled back, and any other wait on a PostgreSQL connection that moved nothing for as long fails unless the server shows it is still working on the statement (0 waits for ever)")
}

// checkTimeouts refuses negative --stall-timeout and --lock-timeout values: a negative wait
// has no meaning, and would otherwise be taken silently as a default.
func checkTimeouts(stall, lock time.Duration) error {
	switch {
	case stall < 0:
		return usageErrorf("--stall-timeout must not be negative (0 waits for ever)")
	case lock < 0:
		return usageErrorf("--lock-timeout must not be negative")
	}
	return nil
}

// startRun serves metrics (when asked) and starts the pipeline for a backup or a restore,
// whose coordinator gives up after stall without task progress, and whose in-process workers
// cancel an attempt that moved nothing for as long; stop undoes both.
func startRun(ctx context.Context, cfg pipeline.Config, metricsAddr string, stall time.Duration) (*pipeline.Session, func(), error) {
	stopMetrics, err := serveMetrics(metricsAddr)
	if err != nil {
		return nil, nil, err
	}
	cfg.StallTimeout = stall
	s, err := pipeline.Start(ctx, cfg)
	if err != nil {
		stopMetrics()
		return nil, nil, err
	}
	s.Coordinator.StallTimeout = stall
	return s, func() { s.Close(); stopMetrics() }, nil
}
