package layout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestHashFiles(t *testing.T) {
	dir := t.TempDir()
	var rels []string
	for i := 0; i < 50; i++ {
		rel := fmt.Sprintf("d/f%02d", i)
		os.MkdirAll(filepath.Join(dir, "d"), 0o755)
		os.WriteFile(filepath.Join(dir, rel), []byte(rel), 0o644)
		rels = append(rels, rel)
	}
	rels = append(rels, "d/missing")
	seen, failed := map[string]string{}, 0
	err := HashFiles(context.Background(), dir, rels, 4, func(rel, sum string, n int64, err error) error {
		if err != nil {
			failed++
			return nil
		}
		seen[rel] = sum
		return nil
	})
	if err != nil || len(seen) != 50 || failed != 1 {
		t.Fatalf("err %v, %d hashed, %d failed", err, len(seen), failed)
	}
	want, _, _ := HashFile(context.Background(), filepath.Join(dir, "d/f07"))
	if seen["d/f07"] != want {
		t.Fatal("wrong sum")
	}
	stop := errors.New("stop")
	calls := 0
	err = HashFiles(context.Background(), dir, rels, 4, func(string, string, int64, error) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls > 4 {
		t.Fatalf("err %v after %d calls: an error from fn must stop the work", err, calls)
	}
}
