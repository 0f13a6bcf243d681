package telemetry_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/messages"
)

// TestHelperTracedWorker is what the re-executed test binary runs: workers on the parent's
// NATS server, writing their spans to a file, until the parent closes standard input.
func TestHelperTracedWorker(t *testing.T) {
	spans := os.Getenv("WNB_TRACE_CHILD_SPANS")
	if spans == "" {
		t.Skip("only runs as the child of TestTraceSpansProcesses")
	}
	flush, err := dumpSpansTo(spans)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pipeline.Start(context.Background(), pipeline.Config{
		NATSURL: os.Getenv("WNB_TRACE_CHILD_NATS"), Workers: 2,
		DatabaseURL: os.Getenv("WNB_TRACE_CHILD_DB"), StorageURL: os.Getenv("WNB_TRACE_CHILD_STORAGE"),
		Backoff: func(int) time.Duration { return 20 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, os.Stdin)
	s.Close()
	if err := flush(); err != nil {
		t.Fatal(err)
	}
}

// A backup and a restore coordinated in this process, their tasks run by a worker in another
// process: each run is one trace, and every span of the worker process hangs off the producer
// span of the task it processed.
func TestTraceSpansProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a worker process")
	}
	ctx := context.Background()
	coordSpans := recordSpans(t)

	dir := t.TempDir()
	dbURL, storageDir := "sqlite:///"+filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media")
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook = 2, 4
	if _, err := demo.Fill(ctx, dbURL, storageDir, opts); err != nil {
		t.Fatal(err)
	}
	embURL := queuetest.Server(t)

	spansFile := filepath.Join(t.TempDir(), "worker-spans.jsonl")
	child := exec.Command(os.Args[0], "-test.run=^TestHelperTracedWorker$", "-test.v")
	child.Env = append(os.Environ(), "WNB_TRACE_CHILD_SPANS="+spansFile, "WNB_TRACE_CHILD_NATS="+embURL,
		"WNB_TRACE_CHILD_DB="+dbURL, "WNB_TRACE_CHILD_STORAGE="+storageDir)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	childLog := filepath.Join(t.TempDir(), "child.log")
	logf, err := os.Create(childLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	child.Stdout, child.Stderr = logf, logf
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	waited := false
	defer func() {
		if !waited {
			child.Process.Kill()
			<-exited
		}
	}()
	childFailed := func(format string, args ...any) {
		t.Helper()
		b, _ := os.ReadFile(childLog)
		t.Fatalf(format+"\nworker process log:\n%s", append(args, b)...)
	}

	// The coordinator runs no tasks itself: the child does all the work.
	s, err := pipeline.Start(ctx, pipeline.Config{NATSURL: embURL, Workers: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep, err := s.Coordinator.Backup(rctx, coordinator.BackupOptions{
		DatabaseURL: dbURL, StorageURL: storageDir, BackupDir: t.TempDir(), FilesPerTask: 5,
	})
	if err != nil {
		childFailed("backup: %v", err)
	}
	rrep, err := s.Coordinator.Restore(rctx, coordinator.RestoreOptions{
		Source: rep.Path, DatabaseURL: dbURL, StorageURL: storageDir, FilesPerTask: 5,
	})
	if err != nil {
		childFailed("restore: %v", err)
	}
	stdin.Close()
	select {
	case err := <-exited:
		waited = true
		if err != nil {
			childFailed("worker process: %v", err)
		}
	case <-time.After(time.Minute):
		childFailed("the worker process did not stop")
	}
	f, err := os.Open(spansFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	workerSpans := readSpans(t, f)
	coord := stubSpans(coordSpans.GetSpans())

	if rep.TraceID == "" || rrep.TraceID == "" || rep.TraceID == rrep.TraceID {
		t.Fatalf("trace ids: backup %q, restore %q; want two different ones", rep.TraceID, rrep.TraceID)
	}
	meta, err := layout.ReadMetadata(rep.Path)
	if err != nil {
		t.Fatal(err)
	}
	if meta.TraceID != rep.TraceID {
		t.Errorf("backup_metadata.json trace_id = %q, the run's trace is %q", meta.TraceID, rep.TraceID)
	}

	n := checkRunTrace(t, "backup", rep.RunID, rep.TraceID, coord, workerSpans,
		[]string{"backup.plan", "backup.assemble", "backup.publish"}, []string{"database.export", "storage.copy"})
	n += checkRunTrace(t, "restore", rrep.RunID, rrep.TraceID, coord, workerSpans,
		[]string{"restore.check", "database.load", "restore.files"}, []string{"storage.copy"})
	if n != len(workerSpans) {
		t.Errorf("%d of the worker's %d spans belong to neither run's trace", len(workerSpans)-n, len(workerSpans))
	}
}

// checkRunTrace checks one run's trace across both processes and returns how many of the
// worker's spans it holds.
func checkRunTrace(t *testing.T, kind, run, traceID string, coord, worker []span, coordNames, workerNames []string) int {
	t.Helper()
	inTrace := map[string]span{} // span id → span, both processes
	var root *span
	for i, s := range coord {
		if s.Trace != traceID {
			continue
		}
		inTrace[s.ID] = s
		if s.Name == kind && s.Parent == "" {
			root = &coord[i]
		}
	}
	if root == nil {
		t.Fatalf("%s: no root span in trace %s", kind, traceID)
	}
	if root.Attrs["wnb.run.id"] != run {
		t.Errorf("%s root span: run id %q, want %q", kind, root.Attrs["wnb.run.id"], run)
	}
	names := map[string]int{}
	for _, s := range inTrace {
		names[s.Name]++
	}
	for _, want := range coordNames {
		if names[want] == 0 {
			t.Errorf("%s: coordinator span %q missing; have %v", kind, want, names)
		}
	}

	// Producer spans, one per task, in the run's trace.
	published := map[string]span{} // task id → producer span
	for _, s := range coord {
		if s.Kind != "producer" || s.Attrs["wnb.run.id"] != run {
			continue
		}
		if s.Trace != traceID {
			t.Errorf("%s: publish span of task %s is in trace %s, not the run's %s", kind, s.Attrs["wnb.task.id"], s.Trace, traceID)
		}
		published[s.Attrs["wnb.task.id"]] = s
	}
	if len(published) == 0 {
		t.Fatalf("%s: no publish spans", kind)
	}

	// The worker process: consumer spans under the producer span of their task.
	processed := map[string]string{} // consumer span id → task id
	for _, s := range worker {
		if s.Kind != "consumer" || s.Attrs["wnb.run.id"] != run {
			continue
		}
		task := s.Attrs["wnb.task.id"]
		p, ok := published[task]
		switch {
		case s.Trace != traceID:
			t.Errorf("%s: worker span %q of task %s is in trace %s, not the run's %s", kind, s.Name, task, s.Trace, traceID)
		case !ok || s.Parent != p.ID:
			t.Errorf("%s: worker span %q of task %s has parent %s, want the task's publish span %s", kind, s.Name, task, s.Parent, p.ID)
		case s.Attrs["wnb.delivery.attempt"] == "" || s.Attrs["wnb.worker"] == "" || s.Attrs["wnb.outcome"] != "success":
			t.Errorf("%s: worker span %q attributes %v", kind, s.Name, s.Attrs)
		}
		processed[s.ID] = task
	}
	done := map[string]bool{}
	for _, task := range processed {
		done[task] = true
	}
	for task := range published {
		if !done[task] {
			t.Errorf("%s: task %s has no worker span", kind, task)
		}
	}

	// The worker's inner spans hang off its consumer spans.
	n := 0
	inner := map[string]int{}
	for _, s := range worker {
		if s.Trace != traceID {
			continue
		}
		n++
		if s.Kind == "consumer" {
			continue
		}
		inner[s.Name]++
		if _, ok := processed[s.Parent]; !ok {
			t.Errorf("%s: worker span %q has parent %s, not one of the run's task spans", kind, s.Name, s.Parent)
		}
	}
	for _, want := range workerNames {
		if inner[want] == 0 {
			t.Errorf("%s: worker span %q missing; have %v", kind, want, inner)
		}
	}
	if kind == "backup" {
		for _, s := range worker {
			if s.Name == "database.export" && s.Trace == traceID && (s.Attrs["wnb.model"] == "" || s.Attrs["wnb.rows"] == "") {
				t.Errorf("database.export span attributes %v", s.Attrs)
			}
		}
	}
	var kinds = map[string]bool{}
	for _, s := range published {
		kinds[s.Attrs["wnb.task.kind"]] = true
	}
	want := []string{messages.KindRestorePrefix}
	if kind == "backup" {
		want = []string{messages.KindExportModel, messages.KindCopyPrefix}
	}
	for _, k := range want {
		if !kinds[k] {
			t.Errorf("%s: no %s task published; kinds %v", kind, k, kinds)
		}
	}
	return n
}
