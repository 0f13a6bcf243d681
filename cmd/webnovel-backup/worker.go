package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/workers"
)

func newWorkerCommand(g *globals) *cobra.Command {
	var (
		concurrency int
		healthAddr  string
		grace       time.Duration
		name        string
		metricsAddr string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run tasks from a NATS JetStream cluster until SIGTERM",
		Long: `A long-running worker: it takes export and copy tasks from the cluster's WNB_TASKS queue,
reading the database (--database) and storage (--storage) it is configured with, which must be
the ones the coordinator backs up. On SIGTERM or Ctrl-C it stops taking tasks, lets those in
flight finish for up to --shutdown-grace, hands back the rest, and exits.`,
		Example: `  NATS_URL=nats://nats:4222 DATABASE_URL=postgres://… STORAGE_URL=/srv/media webnovel-backup worker --concurrency 8`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			g.resolve()
			if g.nats == "" {
				return usageErrorf("worker needs a cluster: --nats or NATS_URL")
			}
			if concurrency < 1 {
				return usageErrorf("--concurrency must be 1 or more")
			}
			opts, err := g.natsAuth.Options()
			if err != nil {
				return usageErrorf("%w", err)
			}
			ctx := cmd.Context()
			nc, err := queue.Connect(g.nats, "webnovel-backup worker", opts...)
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			cons, err := queue.Ensure(ctx, js, g.queueConfig())
			if err != nil {
				return err
			}
			w, err := workers.New(ctx, js, cons, workers.Config{
				Name: name, Concurrency: concurrency, DatabaseURL: g.database, StorageURL: g.storage,
				ShutdownGrace: grace,
			})
			if err != nil {
				return err
			}
			if healthAddr != "" {
				ln, err := net.Listen("tcp", healthAddr)
				if err != nil {
					return fmt.Errorf("health endpoint: %w", err)
				}
				srv := &http.Server{Handler: workers.HealthHandler(w), ReadHeaderTimeout: 5 * time.Second}
				go srv.Serve(ln)
				defer srv.Shutdown(context.WithoutCancel(ctx))
				slog.Info("health endpoint", "addr", ln.Addr().String())
			}
			stopMetrics, err := serveMetrics(metricsAddr)
			if err != nil {
				return err
			}
			defer stopMetrics()
			slog.Info("worker started", "nats", queue.Redact(g.nats), "concurrency", concurrency)
			err = w.Run(ctx)
			slog.Info("worker stopped")
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&concurrency, "concurrency", 4, "tasks run at once")
	f.StringVar(&healthAddr, "health-addr", ":8081", "address of the /healthz and /readyz endpoint (empty: none)")
	f.DurationVar(&grace, "shutdown-grace", 25*time.Second, "on SIGTERM, how long tasks in flight may finish before they are handed back")
	f.StringVar(&metricsAddr, "metrics-addr", "", metricsFlagUsage)
	f.StringVar(&name, "name", "", "worker name in results and logs (default: host name and pid)")
	return cmd
}
