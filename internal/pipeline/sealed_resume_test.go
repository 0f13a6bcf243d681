package pipeline_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// TestResumeEncryptedArchivePublish (issue 12 items 2, 4): a coordinator killed -9 while it
// publishes an encrypted archive is finished by `backup --resume`. Killed once the archive is
// whole but before its sidecar is written (local: linked, staging folder gone; S3: upload
// complete), or after the sidecar with the staging area left (S3), the resume recognises the
// archive as the run's, writes the missing sidecar, removes the rest and reports it: one
// archive, with a sidecar that records its bytes, that stock `age -d | tar x` opens into a
// backup whose SHA256SUMS checks. Killed while the archive was being written, the staged
// fixtures and parts are encrypted to the dead coordinator's run key: the resume fails saying
// to start a new backup, and leaves no backup behind.
func TestResumeEncryptedArchivePublish(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	embURL := queuetest.Server(t)
	s3 := s3test.Start(t, nil, "backups")
	key := newSealKey(t)
	s := resumableSession(t, p, embURL)
	for i, tc := range []struct {
		halt    string
		onS3    bool
		wantErr string
	}{
		{"sealed", false, ""},
		{"sealed", true, ""},
		{"unstage", true, ""},
		{"archive", false, "start a new backup"},
	} {
		name := tc.halt
		if tc.onS3 {
			name += "-s3"
		}
		t.Run(name, func(t *testing.T) {
			dest := t.TempDir()
			if tc.onS3 {
				dest = s3.URL("backups", name, "")
			}
			run := "sealed-resume-" + strings.ReplaceAll(name, "-", "") + string(rune('a'+i))
			killChildAt(t, s, tc.halt, "WNB_CHILD_NATS="+embURL, "WNB_CHILD_DB="+p.dbURL, "WNB_CHILD_STORAGE="+p.storage,
				"WNB_CHILD_BACKUPS="+dest, "WNB_CHILD_RUN="+run, "WNB_CHILD_COMPRESS=1",
				"WNB_CHILD_RECIPIENT="+key.recipients.Public()[0])
			rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, Resume: run})
			keys := destKeys(t, dest)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("resume: %v, want an error saying %q", err, tc.wantErr)
				}
				for _, k := range keys {
					if layout.IsBackupName(k) {
						t.Fatalf("the failed resume left a backup: %v", keys)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			where, _, _ := strings.Cut(rep.Path, "?")
			archiveName := filepath.Base(where)
			if want := []string{archiveName, layout.SidecarName(archiveName)}; !strings.HasSuffix(archiveName, ".tar.gz"+layout.EncryptedExt) || !slices.Equal(keys, want) {
				t.Fatalf("after the resume the destination holds %v, want %v", keys, want)
			}
			file := rep.Path
			if tc.onS3 {
				file = downloadArchive(t, dest, archiveName)
				os.Rename(downloadArchive(t, dest, layout.SidecarName(archiveName)), layout.SidecarName(file))
			}
			if meta := sidecarOf(t, file); meta.RunID != run {
				t.Fatalf("sidecar of run %s, want %s", meta.RunID, run)
			}
			top, _ := layout.TrimArchiveExt(archiveName)
			sha256sumCheck(t, filepath.Join(stockAgeTarExtract(t, file, key.file, archive.Gzip), top))
			if rec, _ := s.Coordinator.RunRecord(context.Background(), run); rec.State != messages.RunComplete {
				t.Fatalf("run record after the resume: %+v", rec)
			}
		})
	}
}

// resumableSession starts 2 in-process workers and a coordinator on p, with a run
// heartbeat short enough that a killed coordinator's run shows as abandoned within a second.
func resumableSession(t *testing.T, p platformFixture, natsURL string) *pipeline.Session {
	t.Helper()
	old := messages.RunHeartbeat
	messages.RunHeartbeat = 200 * time.Millisecond
	t.Cleanup(func() { messages.RunHeartbeat = old })
	s, err := pipeline.Start(context.Background(), pipeline.Config{NATSURL: natsURL, Workers: 2,
		DatabaseURL: p.dbURL, StorageURL: p.storage, Backoff: func(int) time.Duration { return 20 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// killChildAt runs a child coordinator (TestHelperCoordinator, with env) until it halts at
// point (WNB_TEST_HALT), kills it, and waits until its run shows as abandoned.
func killChildAt(t *testing.T, s *pipeline.Session, point string, env ...string) {
	t.Helper()
	killChildWhen(t, s, point, nil, env...)
}

// killChildWhen is killChildAt that, once the child halted, waits until ready (if set) before
// it kills it.
func killChildWhen(t *testing.T, s *pipeline.Session, point string, ready func() bool, env ...string) {
	t.Helper()
	child := haltChild(t, "TestHelperCoordinator", point, append(env, "WNB_TEST_RUN_HEARTBEAT="+messages.RunHeartbeat.String())...)
	if ready != nil {
		waitUntil(t, 60*time.Second, 10*time.Millisecond, "the halted child coordinator to be ready to kill", ready)
	}
	child.Process.Kill()
	child.Wait()
	run := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "WNB_CHILD_RUN="); ok {
			run = v
		}
	}
	waitUntil(t, 30*time.Second, messages.RunHeartbeat, "the dead coordinator's run to show as abandoned", func() bool {
		rec, err := s.Coordinator.RunRecord(context.Background(), run)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Shown(time.Now()) == messages.RunAbandoned
	})
}

// haltChild starts this test binary's helper test name (with env) as a child process and
// waits until it halts at point (WNB_TEST_HALT), for the caller to kill.
func haltChild(t *testing.T, name, point string, env ...string) *exec.Cmd {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v")
	// The child is killed, so its own t.TempDir folders are never removed: they go under
	// the parent's, which is.
	childTmp := t.TempDir()
	child.Env = append(append(os.Environ(), env...), "WNB_TEST_HALT="+point, "TMPDIR="+childTmp)
	logFile := filepath.Join(t.TempDir(), "child.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	child.Stdout, child.Stderr = out, out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, 10*time.Millisecond, name+" to halt at "+point, func() bool {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), "--- FAIL") {
			t.Fatalf("%s ended before halting at %s:\n%s", name, point, b)
		}
		return strings.Contains(string(b), "WNB_TEST_HALT reached "+point)
	})
	return child
}

// destKeys lists what a backup destination (a local folder or an S3 prefix) holds at its top,
// sorted: files and objects, and folders and prefixes by their first component.
func destKeys(t *testing.T, dest string) []string {
	t.Helper()
	ctx := context.Background()
	b, err := storage.Open(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	seen := map[string]bool{}
	if err := b.Walk(ctx, "", func(o storage.Object) error {
		first, _, _ := strings.Cut(o.Key, "/")
		seen[first] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
