package pipeline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/internal/verify"
	"github.com/webnovel/webnovel-backup/messages"
)

// childCoordinator is what the re-executed test binary runs: a coordinator with no workers of
// its own, on the parent's NATS server, until the parent kills it.
func TestHelperCoordinator(t *testing.T) {
	url := os.Getenv("WNB_CHILD_NATS")
	if url == "" {
		t.Skip("only runs as the child of TestResumeAfterCoordinatorDies")
	}
	s, err := pipeline.Start(context.Background(), pipeline.Config{NATSURL: url, Workers: 0})
	if err != nil {
		t.Fatal(err)
	}
	o := coordinator.BackupOptions{
		DatabaseURL: os.Getenv("WNB_CHILD_DB"), StorageURL: os.Getenv("WNB_CHILD_STORAGE"),
		BackupDir: os.Getenv("WNB_CHILD_BACKUPS"), RunID: os.Getenv("WNB_CHILD_RUN"), FilesPerTask: 1,
		Passphrase: os.Getenv("WNB_CHILD_PASSPHRASE"), Compress: os.Getenv("WNB_CHILD_COMPRESS") != "",
	}
	if rc := os.Getenv("WNB_CHILD_RECIPIENT"); rc != "" {
		if o.Recipients, err = encryption.ParseRecipients([]string{rc}, "WNB_CHILD_RECIPIENT"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Coordinator.Backup(context.Background(), o)
	t.Fatalf("the coordinator was meant to be killed, but it finished: %v", err)
}

// A backup whose coordinator is killed -9 is finished by `backup --resume`: file copies already
// done are kept, the database is exported again under a new snapshot, and the backup verifies.
func TestResumeAfterCoordinatorDies(t *testing.T) {
	opts := demo.DefaultOptions()
	opts.Books, opts.ChaptersPerBook = 6, 20
	p := sqlitePlatform(t, opts)
	embURL := queuetest.Server(t)
	backups := t.TempDir()
	const run = "resume-test-1"

	// One worker, stopped with the coordinator so that the run dies with copies done and
	// copies left (a worker left running would finish every queued task).
	startWorker := func() *pipeline.Session {
		s, err := pipeline.Start(context.Background(), pipeline.Config{NATSURL: embURL, Workers: 1,
			DatabaseURL: p.dbURL, StorageURL: p.storage, Backoff: func(int) time.Duration { return 20 * time.Millisecond }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	s := startWorker()

	child := exec.Command(os.Args[0], "-test.run=^TestHelperCoordinator$", "-test.v")
	child.Env = append(os.Environ(), "WNB_CHILD_NATS="+embURL, "WNB_CHILD_DB="+p.dbURL, "WNB_CHILD_STORAGE="+p.storage,
		"WNB_CHILD_BACKUPS="+backups, "WNB_CHILD_RUN="+run)
	out, _ := os.Create(filepath.Join(t.TempDir(), "child.log"))
	child.Stdout, child.Stderr = out, out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once some copies are done and some are not.
	results, err := s.JetStream.Stream(context.Background(), messages.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Some file copies must be done, so there is something for the resume to keep.
		info, err := results.Info(context.Background(), jetstream.WithSubjectFilter(messages.RunResultsSubject(run)))
		copies := 0
		if err == nil {
			for subj := range info.State.Subjects {
				if strings.Contains(subj, ".copy-") {
					copies++
				}
			}
		}
		if copies >= 2 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("the child coordinator made no progress:\n%s", b)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	child.Process.Kill()
	child.Wait()
	s = startWorker()
	if results, err = s.JetStream.Stream(context.Background(), messages.StreamResults); err != nil {
		t.Fatal(err)
	}

	// The registry shows it abandoned once its heartbeat is stale.
	waitUntil(t, 30*time.Second, messages.RunHeartbeat, "the dead coordinator's run to show as abandoned", func() bool {
		rec, err := s.Coordinator.RunRecord(context.Background(), run)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Shown(time.Now()) == messages.RunAbandoned
	})
	if names := backupNames(t, backups); len(names) != 0 {
		t.Fatalf("a dead coordinator's run looks like a backup: %v", names)
	}

	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, Resume: run,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != int64(p.summary.Files) {
		t.Fatalf("resumed backup has %d files, the platform %d", rep.Files, p.summary.Files)
	}
	vr, err := verify.Verify(context.Background(), rep.Path, verify.Options{})
	if err != nil || !vr.OK {
		t.Fatalf("resumed backup does not verify: %v %+v", err, vr.Problems)
	}
	// Copies done before the crash were not redone: some results of the run carry no -r1.
	info, _ := results.Info(context.Background(), jetstream.WithSubjectFilter(messages.RunResultsSubject(run)))
	var kept, redone int
	for subj := range info.State.Subjects {
		if strings.Contains(subj, ".copy-") {
			if strings.HasSuffix(subj, "-r1") {
				redone++
			} else {
				kept++
			}
		}
	}
	if kept == 0 || redone == 0 {
		t.Fatalf("copy results: %d kept from before the crash, %d redone; want both", kept, redone)
	}
	rec, _ := s.Coordinator.RunRecord(context.Background(), run)
	if rec.State != messages.RunComplete || rec.Path != rep.Path {
		t.Fatalf("run record after resume: %+v", rec)
	}
	// A finished run cannot be resumed again.
	if _, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{Resume: run}); err == nil || !strings.Contains(err.Error(), "complete") {
		t.Fatalf("resuming a complete run: %v", err)
	}
}
