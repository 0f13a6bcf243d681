package main

import (
	"context"
	"fmt"
	"github.com/spf13/cobra"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"log/slog"
	"os"
	"time"

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

// serveMetrics serves /metrics on addr until stop; nothing when addr is empty.
func serveMetrics(addr string) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	s, err := telemetry.ListenMetrics(addr)
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
const metricsFlagUsage = "serve Prometheus metrics on this address, e.g. :9090 (empty: none)"

// startRun serves metrics (when asked) and starts the pipeline for a backup or a restore;
// stop undoes both.
func startRun(cmd *cobra.Command, cfg pipeline.Config, metricsAddr string) (*pipeline.Session, func(), error) {
	stopMetrics, err := serveMetrics(metricsAddr)
	if err != nil {
		return nil, nil, err
	}
	s, err := pipeline.Start(cmd.Context(), cfg)
	if err != nil {
		stopMetrics()
		return nil, nil, err
	}
	return s, func() { s.Close(); stopMetrics() }, nil
}
