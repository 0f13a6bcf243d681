package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// The transfer guard: peers that keep a request alive without moving it are given up after a
// bounded time, and a slow reader on our side is not mistaken for one.

// trickleWriter sends a response's body 16 bytes every 20 ms (800 bytes a second): each read
// gets its byte long before any read timeout.
type trickleWriter struct {
	http.ResponseWriter
	ctx context.Context
}

func (w trickleWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 16)
		m, err := w.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		p = p[k:]
		select {
		case <-time.After(20 * time.Millisecond):
		case <-w.ctx.Done():
			return n, w.ctx.Err()
		}
	}
	return n, nil
}

// guardCtx bounds a guarded call: far above what the guard allows, far below what a trickle
// or a blocked upload would take without it.
func guardCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestS3TrickleIsCutOff(t *testing.T) {
	var gets atomic.Int64
	f := newFakeS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/slow.bin") {
				gets.Add(1)
				h.ServeHTTP(trickleWriter{w, r.Context()}, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}, "bkt")
	f.put(t, "bkt", "p/slow.bin", bytes.Repeat([]byte("x"), 100_000)) // 125 s at 800 B/s
	b, err := storage.Open(context.Background(), f.url("bkt", "p", "timeout=400ms"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	rc, _, err := b.Open(guardCtx(t), "slow.bin")
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("read of a trickling object: %v after %s, want a stall", err, time.Since(start).Round(time.Millisecond))
	}
	if n := gets.Load(); n > 3 {
		t.Fatalf("%d GETs of the trickling object, want at most 3", n)
	}
}

func TestS3SlowReaderIsNotAStall(t *testing.T) {
	f := newFakeS3(t, nil, "bkt")
	data := bytes.Repeat([]byte("0123456789"), 10_000) // 100 kB: one streamed response
	f.put(t, "bkt", "p/fine.bin", data)
	b, err := storage.Open(context.Background(), f.url("bkt", "p", "timeout=300ms"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rc, _, err := b.Open(guardCtx(t), "fine.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	buf := make([]byte, 25_000)
	for {
		n, err := rc.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("a reader that pauses longer than the timeout between reads: %v", err)
		}
		time.Sleep(500 * time.Millisecond) // our side is slow, not the peer
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read %d bytes, want %d", got.Len(), len(data))
	}
}

func TestS3UploadNotReadIsCutOff(t *testing.T) {
	var puts atomic.Int64
	release := make(chan struct{})
	f := newFakeS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/stuck.bin") {
				puts.Add(1)
				<-release // never reads the body: the upload's writes block
				return
			}
			h.ServeHTTP(w, r)
		})
	}, "bkt")
	t.Cleanup(func() { close(release) }) // before the server stops
	// One part far larger than the socket buffers, so that the writes block.
	b, err := storage.Open(context.Background(), f.URL("bkt", "p", "timeout=400ms&part_size=67108864"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	_, err = b.Put(guardCtx(t), "stuck.bin", bytes.NewReader(make([]byte, 48<<20)), storage.Object{})
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("upload to a server that does not read it: %v after %s, want a stall", err, time.Since(start).Round(time.Millisecond))
	}
	if n := puts.Load(); n > 3 {
		t.Fatalf("%d PUTs, want at most 3", n)
	}
}

func TestS3SilentPeerGivesUpAfterThreeAttempts(t *testing.T) {
	s3test.Env(t)
	addr := proctest.SilentListener(t)
	u := fmt.Sprintf("s3://bkt/p?endpoint=%s&path_style=true&region=us-east-1&timeout=300ms", "http://"+addr)
	b, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.Stat(guardCtx(t), "any.txt")
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 attempts in a row without an answer") {
		t.Fatalf("stat on a silent peer: %v, want it given up after 3 attempts in a row", err)
	}
}
