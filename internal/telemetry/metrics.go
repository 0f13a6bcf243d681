package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/messages"
)

// The process's metrics. Workers and the coordinator of one process share them: with
// in-process workers one endpoint shows both.
var (
	tasksTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wnb_tasks_total",
		Help: "Task attempts settled by this process's workers, by kind and outcome (success, retry, failed, handed_back).",
	}, []string{"kind", "outcome"})
	rowsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wnb_rows_total",
		Help: "Database rows exported by successful tasks.",
	}, []string{"kind"})
	bytesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wnb_bytes_total",
		Help: "Bytes written by successful tasks (fixtures and copied files).",
	}, []string{"kind"})
	filesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wnb_files_total",
		Help: "Storage files copied by successful tasks.",
	}, []string{"kind"})
	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wnb_task_duration_seconds",
		Help:    "How long task attempts ran, by kind and outcome.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 9), // 10ms … 11min
	}, []string{"kind", "outcome"})
	redeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wnb_task_redeliveries_total",
		Help: "Tasks taken on a second or later delivery (a worker failed, died or timed out before).",
	}, []string{"kind"})
	inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wnb_tasks_in_flight",
		Help: "Tasks this process's workers are running now.",
	}, []string{"kind"})
	runsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wnb_runs_total",
		Help: "Backups and restores this process coordinated, by outcome (success, failure, partial, dry_run, refused, usage, interrupted).",
	}, []string{"kind", "outcome"})
	lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wnb_last_success_timestamp_seconds",
		Help: "Unix time the last successful run of this kind (backup, restore) finished; absent until one has.",
	}, []string{"kind"})
	lastSuccessDuration = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wnb_last_success_duration_seconds",
		Help: "How long the last successful run of this kind took.",
	}, []string{"kind"})
	lastRun = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wnb_last_run_timestamp_seconds",
		Help: "Unix time the last run of this kind finished, labelled with its outcome: one series per kind, so a pushed or scraped failure stays visible until a later run of that kind succeeds.",
	}, []string{"kind", "outcome"})
	workersRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wnb_workers_running",
		Help: "1 while the worker of this name takes tasks in this process, 0 once it stopped.",
	}, []string{"worker"})
)

// ownMetrics are the tool's own collectors, as MetricNames lists them.
var ownMetrics = []prometheus.Collector{
	tasksTotal, rowsTotal, bytesTotal, filesTotal, taskDuration, redeliveries, inFlight,
	runsTotal, lastSuccess, lastSuccessDuration, lastRun, workersRunning,
}

var taskKinds = []string{messages.KindExportModel, messages.KindCopyPrefix, messages.KindRestorePrefix}

// registry holds the process's metrics with the Go runtime's and the process's own. It is
// made when first read: the runtime collector costs half a millisecond, a tenth of the
// start-up of a command that shows no metrics.
var registry = sync.OnceValue(func() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	r.MustRegister(ownMetrics...)
	return r
})

func init() {
	// Known series start at zero, so rate() and increase() see the first task.
	for _, k := range taskKinds {
		for _, o := range []string{OutcomeSuccess, OutcomeRetry, OutcomeFailed, OutcomeHandedBack} {
			tasksTotal.WithLabelValues(k, o)
		}
		rowsTotal.WithLabelValues(k)
		bytesTotal.WithLabelValues(k)
		filesTotal.WithLabelValues(k)
		redeliveries.WithLabelValues(k)
		inFlight.WithLabelValues(k)
	}
}

func taskStarted(kind string, attempt int) {
	inFlight.WithLabelValues(kind).Inc()
	if attempt > 1 {
		redeliveries.WithLabelValues(kind).Inc()
	}
}

func taskEnded(res *messages.Result, outcome string) {
	inFlight.WithLabelValues(res.Kind).Dec()
	tasksTotal.WithLabelValues(res.Kind, outcome).Inc()
	taskDuration.WithLabelValues(res.Kind, outcome).Observe(res.Duration.Seconds())
	if outcome == OutcomeSuccess {
		rowsTotal.WithLabelValues(res.Kind).Add(float64(res.Rows))
		bytesTotal.WithLabelValues(res.Kind).Add(float64(res.Bytes))
		filesTotal.WithLabelValues(res.Kind).Add(float64(res.Files))
	}
}

func runEnded(kind string, oc outcome.Outcome, took time.Duration) {
	now := float64(time.Now().UnixNano()) / 1e9
	runsTotal.WithLabelValues(kind, oc.Label).Inc()
	lastRun.DeletePartialMatch(prometheus.Labels{"kind": kind})
	lastRun.WithLabelValues(kind, oc.Label).Set(now)
	if oc.Status == outcome.Complete {
		lastSuccess.WithLabelValues(kind).Set(now)
		lastSuccessDuration.WithLabelValues(kind).Set(took.Seconds())
	}
}

// RecordRun counts a run that no coordinator counted (verify, prune, test-backup-restore) in
// the run metrics, as EndRun does for backups and restores: its outcome, and for a complete
// one the last-success gauges.
func RecordRun(kind string, oc outcome.Outcome, took time.Duration) { runEnded(kind, oc, took) }

// WorkerRunning marks the worker named name as taking tasks until the returned function is
// called: an alert on wnb_workers_running finds a cluster with no worker.
func WorkerRunning(name string) (stopped func()) {
	g := workersRunning.WithLabelValues(name)
	g.Set(1)
	return func() { g.Set(0) }
}

// MetricsHandler serves this process's metrics in the Prometheus exposition format.
func MetricsHandler() http.Handler {
	return promhttp.HandlerFor(registry(), promhttp.HandlerOpts{ErrorLog: slogErrorLog{}})
}

// Gatherer is this process's metrics registry, for writing them elsewhere (a textfile).
func Gatherer() prometheus.Gatherer { return registry() }

type slogErrorLog struct{}

func (slogErrorLog) Println(v ...any) { slog.Warn("metrics", "err", fmt.Sprint(v...)) }

// MetricsServer is a listening /metrics endpoint.
type MetricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// ListenMetrics serves /metrics on addr (":9090", "127.0.0.1:0") until Close.
func ListenMetrics(addr string) (*MetricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", MetricsHandler())
	s := &MetricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the endpoint listens on.
func (s *MetricsServer) Addr() string { return s.ln.Addr().String() }

// Close stops the endpoint, letting a scrape in progress finish.
func (s *MetricsServer) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
