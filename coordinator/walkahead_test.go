package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// The planner's walk of a local folder, on a goroutine of its own, passes every file in path
// order across many batches; a join that fails midway ends the walk too, and its error is
// what the listing returns.
func TestWalkAhead(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 5*walkBatch + 3 {
		key := fmt.Sprintf("c%d/%d.txt", i%7, i)
		p := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, "files/"+key)
	}
	slices.Sort(want)
	src, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := &copyPlanner{}
	list := p.listing(context.Background(), src, t.TempDir())

	var got []string
	if err := list(func(e messages.FileEntry) error { got = append(got, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d paths (first %q), want %d in order", len(got), got[:min(3, len(got))], len(want))
	}

	stop := errors.New("join failed")
	n := 0
	done := make(chan error, 1)
	go func() {
		done <- list(func(messages.FileEntry) error {
			if n++; n == walkBatch+1 {
				return stop
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, stop) || n != walkBatch+1 {
			t.Fatalf("listing after a failed join: %v after %d entries, want %v after %d", err, n, stop, walkBatch+1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listing did not end after the join failed")
	}
}
