package hooks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A hook sees the run's facts as WNB_* variables besides the process's environment.
func TestRunPassesEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	t.Setenv("HOOKS_TEST_INHERITED", "kept")
	h := Hook{Name: "post-hook", Command: `env > "` + out + `"`}
	if err := h.Run(context.Background(), Env{"RUN_ID": "r1", "STATUS": "complete", "ROWS": "42"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WNB_RUN_ID=r1\n", "WNB_STATUS=complete\n", "WNB_ROWS=42\n", "HOOKS_TEST_INHERITED=kept\n"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("hook environment lacks %q:\n%s", want, raw)
		}
	}
}

// A failing hook's error names the hook, its program and its exit status, never the rest of
// its command (a password given to curl -u); a command that cannot run is an error too.
func TestRunFailures(t *testing.T) {
	tests := []struct {
		command string
		want    []string
	}{
		{"exit 7", []string{`pre-hook "exit …" failed`, "exit status 7"}},
		{"no-such-command-wnb", []string{`pre-hook "no-such-command-wnb" failed`, "exit status 127"}},
		{"kill -TERM $$", []string{`pre-hook "kill …" failed`, "terminated"}},
		{"curl -fsS -u ops:Hk5secret http://127.0.0.1:1/x", []string{`pre-hook "curl …" failed`}},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			err := Hook{Name: "pre-hook", Command: tt.command}.Run(context.Background(), Env{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Hk5secret") {
				t.Errorf("error %q quotes the command's password", err)
			}
		})
	}
}

// A hook that outlives its timeout is killed with everything it started, and the error says
// so.
func TestRunTimeoutKillsTheHookAndItsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	h := Hook{Name: "post-hook", Command: `sleep 60 & echo $! > "` + pidFile + `"; wait`, Timeout: 300 * time.Millisecond}
	err := h.Run(context.Background(), Env{})
	if err == nil || !strings.Contains(err.Error(), `post-hook "sleep …"`) || !strings.Contains(err.Error(), "killed after running for 300ms") {
		t.Fatalf("err = %v", err)
	}
	raw, rerr := os.ReadFile(pidFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	if pid <= 0 {
		t.Fatalf("pid file %q", raw)
	}
	// The orphaned sleep is reaped by init once killed; give that a bounded moment.
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the hook's child %d still runs after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive says whether pid runs: a zombie (killed, not yet reaped by whoever adopted it) does
// not.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// A cancelled context (Ctrl-C) stops the hook and says it was interrupted.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := Hook{Name: "pre-hook", Command: "sleep 60"}.Run(ctx, Env{})
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// ReportEnv reads a backup's and a restore's --json reports alike.
func TestReportEnv(t *testing.T) {
	tests := []struct {
		name   string
		report any
		want   Env
	}{
		{"backup", map[string]any{"status": "complete", "run_id": "r1", "path": "/b/backup_1", "rows": 12, "files": 3, "bytes": 99, "duration_seconds": 1.5,
			"models": []map[string]any{{"rows": 5}}},
			Env{"STATUS": "complete", "RUN_ID": "r1", "BACKUP_PATH": "/b/backup_1", "ROWS": "12", "FILES": "3", "BYTES": "99", "DURATION_SECONDS": "1.500", "ERROR": ""}},
		{"restore", map[string]any{"status": "partial", "backup": "s3://k:sec@b/x/backup_1", "models": []map[string]any{{"rows": 5}, {"rows": 7}}, "files": 2, "error": "2 files failed"},
			Env{"STATUS": "partial", "RUN_ID": "", "BACKUP_PATH": "s3://k:xxxxx@b/x/backup_1", "ROWS": "12", "FILES": "2", "BYTES": "0", "DURATION_SECONDS": "0.000", "ERROR": "2 files failed"}},
		{"nothing", nil, Env{"STATUS": "", "RUN_ID": "", "BACKUP_PATH": "", "ROWS": "0", "FILES": "0", "BYTES": "0", "DURATION_SECONDS": "0.000", "ERROR": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ReportEnv(tt.report)
			if len(got) != len(tt.want) {
				t.Errorf("ReportEnv = %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
