package coordinator

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/storage"
)

// TestRemoveTempFilesSince: with a time, only the temporary files made since then go (what a
// restore's own stopped workers left); older ones, named the same, are the platform's and
// stay; a lookalike name is never taken; with no time every temporary file goes.
func TestRemoveTempFilesSince(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string) string {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	older := write("uploads/2020/" + storage.TempPrefix + "00112233445566778899aabbccddeeff")
	lookalike := write(storage.TempPrefix + "draft.txt")
	time.Sleep(50 * time.Millisecond) // past a coarse clock's tick
	since := time.Now()
	time.Sleep(50 * time.Millisecond)
	leftover := write("content/" + storage.TempPrefix + "0123456789abcdef")

	removed, err := removeTempFiles(dir, since)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{leftover}) {
		t.Fatalf("removed %v, want only %s", removed, leftover)
	}
	for _, p := range []string{older, lookalike} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if removed, err = removeTempFiles(dir, time.Time{}); err != nil || !slices.Equal(removed, []string{older}) {
		t.Fatalf("with no time: removed %v (%v), want %s", removed, err, older)
	}
	if _, err := os.Stat(lookalike); err != nil {
		t.Errorf("the lookalike was removed: %v", err)
	}
}
