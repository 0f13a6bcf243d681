package storage

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
)

// TestLocalWriterStartsWritebackAsItWrites checks that a large file's data is sent to the disk
// while it is written, a step at a time, so that the sync at Commit is left only the tail,
// and that the file is still written whole.
func TestLocalWriterStartsWritebackAsItWrites(t *testing.T) {
	calls := 0
	old := writeback
	writeback = func(f *os.File) { calls++; old(f) }
	t.Cleanup(func() { writeback = old })

	ctx := context.Background()
	b, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	w, err := b.Create(ctx, "big.json", Object{})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	steps := 3
	for range steps * writebackStep / len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if calls != steps {
		t.Errorf("writeback started %d times while %d steps of %d bytes were written, want %d", calls, steps, writebackStep, steps)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Open(ctx, "big.json")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := io.Copy(io.Discard, r)
	if err != nil || n != int64(steps*writebackStep) {
		t.Errorf("read back %d bytes (%v), want %d", n, err, steps*writebackStep)
	}
}
