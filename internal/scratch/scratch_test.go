//go:build unix

package scratch

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHelperOwner is what the re-executed test binary runs: it makes a temporary folder and
// a temporary file, prints their paths and waits to be killed.
func TestHelperOwner(t *testing.T) {
	dir := os.Getenv("WNB_SCRATCH_DIR")
	if dir == "" {
		t.Skip("only runs as the child of TestSweepRemovesKilledOwnersLeftovers")
	}
	d, err := MkdirTemp(dir, "wnb-snapshot-")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(d, "copy.sqlite3"), []byte("a database"), 0o600)
	f, err := CreateTemp(dir, "wnb-nats-*.store")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Stdout.WriteString(d + "\n" + f.Name() + "\n")
	time.Sleep(time.Minute) // the parent kills it long before
}

// A process killed with SIGKILL leaves its temporary files; the next one removes them, and
// leaves alone those of live processes and those whose owner it cannot know.
func TestSweepRemovesKilledOwnersLeftovers(t *testing.T) {
	dir := t.TempDir()
	left := killedOwnersFiles(t, dir)
	mine, err := MkdirTemp(dir, "wnb-verify-") // a live owner: this process
	if err != nil {
		t.Fatal(err)
	}
	untagged := filepath.Join(dir, "wnb-snapshot-123456")
	if err := os.Mkdir(untagged, 0o700); err != nil {
		t.Fatal(err)
	}
	removed := SweepAll(dir)

	for _, p := range left {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("the killed process's %s is still there (err %v)", p, err)
		}
	}
	slices.Sort(removed)
	slices.Sort(left)
	if !slices.Equal(removed, left) {
		t.Errorf("removed %v, want %v", removed, left)
	}
	for _, p := range []string{mine, untagged} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

// killedOwnersFiles runs TestHelperOwner in a child process, kills it once it has made its
// files, and returns their paths.
func killedOwnersFiles(t *testing.T, dir string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperOwner$")
	child.Env = append(os.Environ(), "WNB_SCRATCH_DIR="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var paths []string
	lines := bufio.NewScanner(out) // ends when the child dies: the context kills it at worst
	for len(paths) < 2 && lines.Scan() {
		if p := strings.TrimSpace(lines.Text()); strings.HasPrefix(p, dir) {
			paths = append(paths, p)
		}
	}
	child.Process.Kill()
	child.Wait()
	if len(paths) != 2 {
		t.Fatalf("the child printed %v", paths)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the child's %s: %v", p, err)
		}
	}
	return paths
}

// A tag whose pid is this process's but whose start time is not belongs to an earlier
// process that had the same pid: it is swept.
func TestSweepTellsReusedPid(t *testing.T) {
	if startTime(os.Getpid()) == 0 {
		t.Skip("no process start times here")
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, "wnb-nats-"+tag(os.Getpid(), startTime(os.Getpid())-1)+"x")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := Sweep(dir, "wnb-nats-"); len(got) != 1 || got[0] != stale {
		t.Fatalf("swept %v, want %s", got, stale)
	}
}

func TestParseTag(t *testing.T) {
	tests := []struct {
		in    string
		pid   int
		start uint64
		ok    bool
	}{
		{"42.1234-abc", 42, 1234, true},
		{"42.0-", 42, 0, true},
		{"123456", 0, 0, false},
		{"lists-42.1-x", 0, 0, false},
		{"0.5-x", 0, 0, false},
		{"42.x-", 0, 0, false},
	}
	for _, tt := range tests {
		pid, start, ok := parseTag(tt.in)
		if pid != tt.pid || start != tt.start || ok != tt.ok {
			t.Errorf("parseTag(%q) = %d, %d, %v", tt.in, pid, start, ok)
		}
	}
}
