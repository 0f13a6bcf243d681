//go:build unix

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/proctest"
)

// An interrupted backup is reported too: the post-hook (here one slower than the usual stop
// grace) sees WNB_STATUS=interrupted and the webhook gets the interrupted report before the
// process exits 130.
func TestInterruptedBackupRunsPostHookAndNotifies(t *testing.T) {
	db, media := bigPlatform(t)
	backups := t.TempDir()
	marker := filepath.Join(t.TempDir(), "status")
	hook := newRecorder(t, http.StatusOK)
	p := proctest.Start(t, os.Args[0], []string{envAsCommand + "=1"},
		"backup", "--database", db, "--storage", media, "--backup-dir", backups, "--workers", "2",
		"--post-hook", `sleep 2; echo "$WNB_STATUS" > '`+marker+`'`, "--notify", hook.URL)
	waitStaging(t, p, backups)
	if err := p.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("the backup ended before Ctrl-C: %v\n%s", err, p.Stderr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("not ended after Ctrl-C: %v", err)
	}
	if code != outcome.CodeInterrupted {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, outcome.CodeInterrupted, p.Stderr())
	}
	status, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(status)) != string(outcome.Interrupted) {
		t.Errorf("post-hook: status %q, %v\n%s", status, err, p.Stderr())
	}
	got := hook.requests()
	if len(got) != 1 {
		t.Fatalf("%d notifications\n%s", len(got), p.Stderr())
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(got[0].body), &rep); err != nil || rep["status"] != string(outcome.Interrupted) {
		t.Errorf("notification %s (%v)", got[0].body, err)
	}
}
