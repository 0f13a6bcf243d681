package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/workers"
)

// defaultHealthAddr is where the worker's probes listen unless told otherwise.
const defaultHealthAddr = ":8081"

// workerOptions are the flags of worker.
type workerOptions struct {
	concurrency int
	healthAddr  string
	grace       time.Duration
	name        string
	metricsAddr string
	stall       time.Duration
	keys        decryptOptions
}

// AddFlags adds worker's flags to f.
func (o *workerOptions) AddFlags(f *pflag.FlagSet) {
	f.IntVar(&o.concurrency, "concurrency", 4, "tasks run at once")
	f.StringVar(&o.healthAddr, "health-addr", defaultHealthAddr, "`address` of the /healthz and /readyz endpoint (empty: none; an address in use is a warning)")
	f.DurationVar(&o.grace, "shutdown-grace", 25*time.Second, "on SIGTERM, how long tasks in flight may finish before they are handed back")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", metricsFlagUsage)
	f.DurationVar(&o.stall, "stall-timeout", workers.DefaultStallTimeout,
		"cancel an export attempt that moved nothing (rows read, bytes written) for this long, as a failed attempt naming the stall (0: never)")
	f.StringVar(&o.name, "name", "", "worker `name` in results and logs (default: host name and pid)")
	// A worker does not know which backup a task restores, so it cannot open a passphrase
	// backup's sealed key: it takes the key itself (age -d backup_key.age > key.txt).
	o.keys.AddFlags(f, false)
}

func newWorkerCommand(g *globals) *cobra.Command {
	var o workerOptions
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run tasks from a NATS JetStream cluster until SIGTERM",
		Long: `A long-running worker: it takes export and copy tasks from the cluster's WNB_TASKS queue,
reading the database (--database) and storage (--storage) it is configured with, which must be
the ones the coordinator backs up. On SIGTERM or Ctrl-C it stops taking tasks, lets those in
flight finish for up to --shutdown-grace, hands back the rest, and exits.

Several workers may run on one host with the default flags. The health endpoint (/healthz,
/readyz on --health-addr, default :8081, which the container probes use) and the metrics
endpoint (--metrics-addr) are served when their address is free; when another process holds
it, the worker logs a warning naming the address and serves tasks without that endpoint. Give
each worker its own address (--health-addr :8082) to probe them all, or --health-addr "" for
none.`,
		Example: `  NATS_URL=nats://nats:4222 DATABASE_URL=postgres://… STORAGE_URL=/srv/media webnovel-backup worker --concurrency 8
  webnovel-backup worker --nats nats://127.0.0.1:4222 --health-addr 127.0.0.1:8082`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runWorker(cmd.Context(), o, g) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// runWorker connects, declares the queue, serves the endpoints and runs tasks until ctx ends.
func runWorker(ctx context.Context, o workerOptions, g *globals) error {
	g.resolve()
	if g.nats == "" {
		return usageErrorf("worker needs a cluster: --nats or NATS_URL")
	}
	if o.concurrency < 1 {
		return usageErrorf("--concurrency must be 1 or more")
	}
	if o.stall < 0 {
		return usageErrorf("--stall-timeout must not be negative (0: never)")
	}
	if o.grace < 0 {
		return usageErrorf("--shutdown-grace must not be negative")
	}
	// Tasks in flight may finish for --shutdown-grace after SIGTERM; the process must not
	// exit under them at the default Ctrl-C grace.
	extendStopGrace(ctx, o.grace+stopGrace)
	opts, err := g.natsAuth.Options()
	if err != nil {
		return usageErrorf("%w", err)
	}
	ids, err := o.keys.identities()
	if err != nil {
		return err
	}
	nc, err := queue.Connect(g.nats, "webnovel-backup worker", opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("worker: JetStream: %w", err)
	}
	cons, err := queue.Ensure(ctx, js, g.queueConfig())
	if err != nil {
		return err
	}
	w, err := workers.New(ctx, js, cons, workers.Config{
		Name: o.name, Concurrency: o.concurrency, DatabaseURL: g.database, StorageURL: g.storage,
		ShutdownGrace: o.grace, Identities: ids, StallTimeout: o.stall,
	})
	if err != nil {
		return err
	}
	return serveWorker(ctx, o, g, w)
}

// serveWorker serves the health and metrics endpoints (each one a warning when its address is
// taken) and runs w until ctx ends.
func serveWorker(ctx context.Context, o workerOptions, g *globals, w *workers.Worker) error {
	stopHealth, err := serveHealth(ctx, o.healthAddr, w)
	if err != nil {
		return err
	}
	defer stopHealth()
	stopMetrics, err := serveMetrics(o.metricsAddr)
	if err != nil {
		return err
	}
	defer stopMetrics()
	slog.Info("worker started", "nats", redact.URL(g.nats), "concurrency", o.concurrency)
	err = w.Run(ctx)
	slog.Info("worker stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// serveHealth serves /healthz and /readyz on addr until stop; nothing when addr is empty. An
// address another process holds (a second worker on this host) is a warning, not a failure.
func serveHealth(ctx context.Context, addr string, w *workers.Worker) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		slog.Warn("health endpoint is off: its address is in use; choose another with --health-addr", "addr", addr, "err", err)
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("health endpoint: %w", err)
	}
	srv := &http.Server{Handler: workers.HealthHandler(w), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	slog.Info("health endpoint", "addr", ln.Addr().String())
	return func() { srv.Shutdown(context.WithoutCancel(ctx)) }, nil
}
