package coordinator

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/database"
)

// TestWatchLoad: a load whose fixture reading stops (the database stopped taking rows) is
// cancelled once the stall timeout passes, with ErrLoadStalled as the cause; one that reads
// every fixture to its end is not, however long it then takes (a commit's index builds).
func TestWatchLoad(t *testing.T) {
	const stall = 200 * time.Millisecond
	fixture := func(r io.Reader) database.LoadFixture {
		return database.LoadFixture{Open: func() (io.ReadCloser, error) { return io.NopCloser(r), nil }}
	}
	t.Run("stalled", func(t *testing.T) {
		blocked, w := io.Pipe() // a reader nothing is written to: the load waits on the database
		defer w.Close()
		ctx, fixtures, stop := watchLoad(t.Context(), []database.LoadFixture{fixture(strings.NewReader("[]")), fixture(blocked)}, stall)
		defer stop()
		readAll(t, fixtures[0])
		go readAll(t, fixtures[1])
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); !errors.Is(cause, ErrLoadStalled) || !strings.Contains(cause.Error(), "--stall-timeout") {
				t.Fatalf("cancelled with %v", cause)
			}
		case <-time.After(10 * stall):
			t.Fatal("a load that read nothing for ten times the stall timeout was not cancelled")
		}
	})
	t.Run("read to the end", func(t *testing.T) {
		ctx, fixtures, stop := watchLoad(t.Context(), []database.LoadFixture{fixture(strings.NewReader("[]")), fixture(strings.NewReader("[{}]"))}, stall)
		defer stop()
		for _, f := range fixtures {
			readAll(t, f)
		}
		time.Sleep(3 * stall) // the commit
		if err := context.Cause(ctx); err != nil {
			t.Fatalf("a load that read everything was cancelled: %v", err)
		}
	})
}

func readAll(t *testing.T, f database.LoadFixture) {
	rc, err := f.Open()
	if err != nil {
		t.Error(err)
		return
	}
	defer rc.Close()
	io.Copy(io.Discard, rc)
}
