package storage_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/webnovel/webnovel-backup/storage"
)

// partGate holds every UploadPart request until release is closed or its client gives up,
// and says on arrived when one comes in, so that no part buffer comes back to the writer.
type partGate struct {
	next    http.Handler
	arrived chan int
	release chan struct{}
}

func (g *partGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
		g.arrived <- 1
		select {
		case <-g.release:
		case <-r.Context().Done():
			return
		}
	}
	g.next.ServeHTTP(w, r)
}

// TestS3LowMemoryHoldsTwoParts checks that a low-memory writer, with two parts uploading and
// concurrency 4, waits for one of them rather than making a third part buffer.
func TestS3LowMemoryHoldsTwoParts(t *testing.T) {
	gate := &partGate{arrived: make(chan int, 8), release: make(chan struct{})}
	f := newFakeS3(t, func(h http.Handler) http.Handler { gate.next = h; return gate }, "lowmem")
	defer close(gate.release)
	b, err := storage.Open(context.Background(), f.url("lowmem", "p", "concurrency=4"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := b.Create(ctx, "big", storage.Object{})
	if err != nil {
		t.Fatal(err)
	}
	storage.HoldFewerParts(w)
	const part = 65536
	// Part 1 full, then a byte that sends it (and takes the second buffer), then part 2 full.
	for _, n := range []int{part, 1, part - 1} {
		if _, err := w.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.Write([]byte{1}) // sends part 2 and needs a third buffer
		done <- err
	}()
	<-gate.arrived
	<-gate.arrived // both parts are uploading and held: no buffer can come back
	cancel()       // ends the wait: the held parts fail and give their buffers back
	<-done
	if got := storage.S3PartBuffers(w); got != 2 {
		t.Errorf("write with two parts uploading made %d part buffers, want 2", got)
	}
	w.Abort()
}

// TestS3PutLowMemory writes a multipart object through PutLowMemory and reads it back whole.
func TestS3PutLowMemory(t *testing.T) {
	f := newFakeS3(t, nil, "lowmem")
	b, err := storage.Open(context.Background(), f.url("lowmem", "p", "concurrency=4"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := make([]byte, 5*65536+123) // six parts of the test's 64 KiB
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	n, err := b.PutLowMemory(context.Background(), "big", bytes.NewReader(data), storage.Object{Mode: 0o640})
	if err != nil || n != int64(len(data)) {
		t.Fatalf("PutLowMemory: %d bytes, %v", n, err)
	}
	r, o, err := b.Open(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) || o.Mode != 0o640 {
		t.Errorf("read back %d bytes (equal: %v), mode %v, %v", len(got), bytes.Equal(got, data), o.Mode, err)
	}
	f.assertNoUploads(t, "lowmem")
}
