package workers

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/queue"
)

// panickyReader panics on its first read, as a bug deep in a storage driver would.
type panickyReader struct{}

func (panickyReader) Read([]byte) (int, error) { panic("driver bug") }

// A panic while one file is copied, in the goroutine that copies it (beyond the handler's own
// recover), fails the task naming the file and the panic; the process goes on.
func TestCopyFilePanicFailsTheTask(t *testing.T) {
	js, _ := startQueue(t, queue.Config{})
	task, src, _ := copyTask(t, map[string]string{"content/a.json": "{}", "content/b.json": "[]"},
		[]string{"content/a.json", "content/b.json"})
	t.Cleanup(SetReadHook(func(key string, r io.Reader) io.Reader {
		if strings.HasSuffix(key, "b.json") {
			return panickyReader{}
		}
		return r
	}))
	w := &Worker{cfg: Config{StorageURL: src}, js: js, log: slog.Default()}
	_, err := w.copy(context.Background(), task)
	if err == nil || !strings.Contains(err.Error(), "content/b.json") || !strings.Contains(err.Error(), "panic: driver bug") {
		t.Fatalf("copy with a panicking read: %v; want an error naming content/b.json and the panic", err)
	}
}
