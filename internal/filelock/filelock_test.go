//go:build unix

package filelock

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestTry: a second lock on a folder or a file is refused while the first is held, and
// taken once it is released.
func TestTry(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "db.sqlite3")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, file} {
		release, err := Try(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Try(path); !errors.Is(err, ErrLocked) {
			t.Fatalf("second lock on %s while the first is held: %v; want ErrLocked", path, err)
		}
		if _, err := TryShared(path); !errors.Is(err, ErrLocked) {
			t.Fatalf("shared lock on %s while an exclusive one is held: %v; want ErrLocked", path, err)
		}
		release()
		shared, err := TryShared(path)
		if err != nil {
			t.Fatal(err)
		}
		other, err := TryShared(path)
		if err != nil {
			t.Fatalf("second shared lock on %s: %v", path, err)
		}
		if _, err := Try(path); !errors.Is(err, ErrLocked) {
			t.Fatalf("exclusive lock on %s while shared ones are held: %v; want ErrLocked", path, err)
		}
		shared()
		other()
		again, err := Try(path)
		if err != nil {
			t.Fatalf("lock on %s after release: %v", path, err)
		}
		again()
	}
	if _, err := Try(filepath.Join(dir, "missing")); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("lock on a missing path: %v; want the open error", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Returns at once (an open for reading would wait for a writer), refusing it.
	if _, err := TryShared(fifo); !errors.Is(err, errNotLockable) {
		t.Fatalf("lock on a FIFO: %v; want errNotLockable", err)
	}
}
