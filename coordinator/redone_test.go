package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// testStage opens a new run's local staging area under a temporary folder.
func testStage(t *testing.T) destination {
	t.Helper()
	stage, err := openDestination(context.Background(), t.TempDir(), "run")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stage.Close)
	return stage
}

// The staging area is searched for a dead worker's temporary files when some task's final
// result is from a later attempt than the first, or the run was resumed: the leftover is
// removed and what the tasks wrote stays. A run whose every task ran once is not searched.
func TestSweepLeftovers(t *testing.T) {
	for _, c := range []struct {
		name     string
		gen      int
		attempts []int
		swept    bool
	}{
		{"no tasks", 0, nil, false},
		{"every task done at once", 0, []int{1, 1, 1}, false},
		{"one task redelivered", 0, []int{1, 2, 1}, true},
		{"attempt unknown", 0, []int{1, 0}, true},
		{"a resumed run", 1, []int{1, 1}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			stage := testStage(t)
			dir := filepath.Join(stage.Location(), "files", "content")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			leftover, kept := filepath.Join(dir, storage.TempPrefix+"0123456789abcdef"), filepath.Join(dir, "a.json")
			// A platform's file that only begins like a temporary name is data, copied.
			lookalike := filepath.Join(dir, storage.TempPrefix+"draft.txt")
			for _, p := range []string{leftover, kept, lookalike} {
				if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			results := map[string]*messages.Result{}
			for i, a := range c.attempts {
				results[string(rune('a'+i))] = &messages.Result{Attempt: a}
			}
			r := &backupRun{stage: stage, gen: c.gen}
			if err := r.sweepLeftovers(results); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(leftover); os.IsNotExist(err) != c.swept {
				t.Errorf("leftover removed: %v, want %v", os.IsNotExist(err), c.swept)
			}
			for _, p := range []string{kept, lookalike} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("a task's file: %v", err)
				}
			}
		})
	}
}
