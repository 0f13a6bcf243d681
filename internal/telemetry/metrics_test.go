package telemetry_test

import (
	"bufio"
	"context"
	"math"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
)

// scrape reads the endpoint over HTTP: series (name{labels} as exposed) → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func listenMetrics(t *testing.T) string {
	t.Helper()
	s, err := telemetry.ListenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s.Addr()
}

func series(name string, labels ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i] + "=" + strconv.Quote(labels[i+1]))
	}
	return name + "{" + b.String() + "}"
}

// A real backup in this process (coordinator and workers) moves the task counters, the rows,
// bytes and files, the durations, and the last-success gauges an alert watches.
func TestMetricsAfterBackup(t *testing.T) {
	ctx := context.Background()
	addr := listenMetrics(t)
	dir := t.TempDir()
	dbURL, storageDir := "sqlite:///"+filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media")
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook = 2, 3
	if _, err := demo.Fill(ctx, dbURL, storageDir, opts); err != nil {
		t.Fatal(err)
	}
	s, err := pipeline.Start(ctx, pipeline.Config{Workers: 2, DatabaseURL: dbURL, StorageURL: storageDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	before := scrape(t, addr)
	start := time.Now()
	rep, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
		DatabaseURL: dbURL, StorageURL: storageDir, BackupDir: t.TempDir(), FilesPerTask: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	after := scrape(t, addr)
	delta := func(name string, labels ...string) float64 {
		k := series(name, labels...)
		if _, ok := after[k]; !ok {
			t.Fatalf("series %s is not exposed", k)
		}
		return after[k] - before[k]
	}

	var exports, rows int64
	for _, m := range rep.Models {
		exports += int64(m.Chunks)
		rows += m.Rows
	}
	copies := (rep.Files + 3) / 4 // FilesPerTask 4, one top-level prefix at a time: at least this many
	ex, cp := messages.KindExportModel, messages.KindCopyPrefix
	checks := []struct {
		name string
		got  float64
		want func(float64) bool
		says string
	}{
		{"export tasks", delta("wnb_tasks_total", "kind", ex, "outcome", "success"), eq(exports), "= export tasks"},
		{"copy tasks", delta("wnb_tasks_total", "kind", cp, "outcome", "success"), atLeast(copies), ">= files/4"},
		{"failed tasks", delta("wnb_tasks_total", "kind", ex, "outcome", "failed"), eq(0), "0"},
		{"rows", delta("wnb_rows_total", "kind", ex), eq(rows), "= rows backed up"},
		{"files", delta("wnb_files_total", "kind", cp), eq(rep.Files), "= files backed up"},
		{"file bytes", delta("wnb_bytes_total", "kind", cp), eq(rep.Bytes), "= bytes backed up"},
		{"fixture bytes", delta("wnb_bytes_total", "kind", ex), atLeast(1), "> 0"},
		{"export durations", delta("wnb_task_duration_seconds_count", "kind", ex, "outcome", "success"), eq(exports), "= export tasks"},
		{"backups", delta("wnb_runs_total", "kind", "backup", "outcome", "success"), eq(1), "1"},
		{"in flight", after[series("wnb_tasks_in_flight", "kind", ex)], eq(0), "0"},
		{"redeliveries", delta("wnb_task_redeliveries_total", "kind", ex), eq(0), "0"},
	}
	for _, c := range checks {
		if !c.want(c.got) {
			t.Errorf("%s: moved by %v, want %s", c.name, c.got, c.says)
		}
	}
	last := after[series("wnb_last_success_timestamp_seconds", "kind", "backup")]
	if last < float64(start.Unix()) || last > float64(time.Now().Unix()+1) {
		t.Errorf("wnb_last_success_timestamp_seconds = %v, want the backup's end (%v..now)", last, start.Unix())
	}
	took := after[series("wnb_last_success_duration_seconds", "kind", "backup")]
	if math.Abs(took-rep.Duration.Seconds()) > 0.001 || took <= 0 {
		t.Errorf("wnb_last_success_duration_seconds = %v, the backup took %v", took, rep.Duration)
	}
}

// A backup whose export tasks fail for good counts failed tasks and a failed run, and leaves
// the last-success gauges alone.
func TestMetricsAfterFailedBackup(t *testing.T) {
	ctx := context.Background()
	addr := listenMetrics(t)
	dir := t.TempDir()
	dbURL, storageDir := "sqlite:///"+filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media")
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook, opts.NoFiles = 1, 1, true
	if _, err := demo.Fill(ctx, dbURL, storageDir, opts); err != nil {
		t.Fatal(err)
	}
	// The workers' database is not there: every export attempt fails, to the last delivery.
	// (A worker configured for another, existing database would hand the tasks back instead.)
	gone := "sqlite:///" + filepath.Join(dir, "gone.sqlite3")
	s, err := pipeline.Start(ctx, pipeline.Config{
		Workers: 1, DatabaseURL: gone, StorageURL: storageDir,
		Queue:   queue.Config{MaxDeliver: 2},
		Backoff: func(int) time.Duration { return 50 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := scrape(t, addr)
	if _, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{
		DatabaseURL: dbURL, StorageURL: storageDir, BackupDir: t.TempDir(), SkipFiles: true,
	}); err == nil {
		t.Fatal("a backup whose workers cannot open their database succeeded")
	}
	// The run fails on the first failed result, which the worker publishes before it counts
	// the task: wait for the count.
	ex := messages.KindExportModel
	failed := series("wnb_tasks_total", "kind", ex, "outcome", "failed")
	after := scrape(t, addr)
	for deadline := time.Now().Add(5 * time.Second); after[failed]-before[failed] < 1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		after = scrape(t, addr)
	}
	if d := after[failed] - before[failed]; d < 1 {
		t.Errorf("failed export tasks moved by %v, want >= 1", d)
	}
	if d := after[series("wnb_runs_total", "kind", "backup", "outcome", "failure")] - before[series("wnb_runs_total", "kind", "backup", "outcome", "failure")]; d != 1 {
		t.Errorf("failed backups moved by %v, want 1", d)
	}
	k := series("wnb_last_success_timestamp_seconds", "kind", "backup")
	if after[k] != before[k] {
		t.Errorf("a failed backup moved %s from %v to %v", k, before[k], after[k])
	}
}

// A task taken on its third delivery counts as a redelivery, and an attempt that will be
// retried as such.
func TestMetricsRedelivery(t *testing.T) {
	addr := listenMetrics(t)
	before := scrape(t, addr)
	task := &messages.Task{Run: "r", ID: "t", Kind: messages.KindCopyPrefix, Copy: &messages.CopyTask{Prefix: "media/"}}
	_, span := telemetry.StartTask(context.Background(), nil, "wnb.tasks.r.copy-prefix", task, 3, "w1")
	mid := scrape(t, addr)
	telemetry.EndTask(span, &messages.Result{Kind: task.Kind, Error: "disk full", Duration: time.Second}, nil)
	after := scrape(t, addr)
	cp := messages.KindCopyPrefix
	for _, c := range []struct {
		name      string
		from, to  map[string]float64
		key       string
		wantDelta float64
	}{
		{"redeliveries", before, after, series("wnb_task_redeliveries_total", "kind", cp), 1},
		{"in flight while running", before, mid, series("wnb_tasks_in_flight", "kind", cp), 1},
		{"in flight after", before, after, series("wnb_tasks_in_flight", "kind", cp), 0},
		{"retries", before, after, series("wnb_tasks_total", "kind", cp, "outcome", "retry"), 1},
		{"retry duration sum", before, after, series("wnb_task_duration_seconds_sum", "kind", cp, "outcome", "retry"), 1},
		{"files of a failed attempt", before, after, series("wnb_files_total", "kind", cp), 0},
	} {
		if d := c.to[c.key] - c.from[c.key]; d != c.wantDelta {
			t.Errorf("%s: %s moved by %v, want %v", c.name, c.key, d, c.wantDelta)
		}
	}
}

func TestTaskOutcome(t *testing.T) {
	tests := []struct {
		res  messages.Result
		want string
	}{
		{messages.Result{Final: true}, telemetry.OutcomeSuccess},
		{messages.Result{Final: true, Error: "x"}, telemetry.OutcomeFailed},
		{messages.Result{Error: "x"}, telemetry.OutcomeRetry},
		{messages.Result{}, telemetry.OutcomeHandedBack},
	}
	for _, tt := range tests {
		if got := telemetry.TaskOutcome(&tt.res); got != tt.want {
			t.Errorf("TaskOutcome(%+v) = %s, want %s", tt.res, got, tt.want)
		}
	}
}

func eq[N int64 | int | float64](want N) func(float64) bool {
	return func(got float64) bool { return got == float64(want) }
}

func atLeast[N int64 | int | float64](want N) func(float64) bool {
	return func(got float64) bool { return got >= float64(want) }
}
