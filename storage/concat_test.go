package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// TestConcatS3 concatenates sources of 5 MiB and more (part copies, no download) and smaller
// ones (merged into parts of at least 5 MiB, S3's minimum for every part but the last), on a
// service with part copies and on one without (everything streamed): the result is the
// sources end to end either way.
func TestConcatS3(t *testing.T) {
	const mib = 1 << 20
	sizes := []int{6 * mib, 6 * mib, 100 << 10, 200 << 10, 7 * mib, 1 * mib, 6 * mib, 10, 0}
	for _, partCopies := range []bool{true, false} {
		t.Run(fmt.Sprintf("part-copies=%v", partCopies), func(t *testing.T) {
			var copies atomic.Int64
			var mu sync.Mutex
			var uploaded []int
			wrap := func(h http.Handler) http.Handler {
				if partCopies {
					h = s3test.PartCopies(&copies)(h)
				}
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") != "" && r.Header.Get("X-Amz-Copy-Source") == "" {
						n, _ := strconv.Atoi(r.Header.Get("Content-Length"))
						mu.Lock()
						uploaded = append(uploaded, n)
						mu.Unlock()
					}
					h.ServeHTTP(w, r)
				})
			}
			s := s3test.Start(t, wrap, "b")
			ctx := context.Background()
			b, err := storage.Open(ctx, s.URL("b", "root", ""))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			var want bytes.Buffer
			var keys []string
			for i, n := range sizes {
				data := make([]byte, n)
				rand.Read(data)
				key := fmt.Sprintf("parts/%02d", i)
				if _, err := b.Put(ctx, key, bytes.NewReader(data), storage.Object{}); err != nil {
					t.Fatal(err)
				}
				want.Write(data)
				keys = append(keys, key)
			}
			mu.Lock()
			uploaded = nil // the sources' own uploads
			mu.Unlock()
			obj, err := b.Concat(ctx, "whole", keys, storage.Object{Mode: 0o600})
			if err != nil {
				t.Fatal(err)
			}
			r, _, err := b.Open(ctx, "whole")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			if obj.Size != int64(want.Len()) || !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("concatenation: %d bytes (object says %d), want %d, equal %v", len(got), obj.Size, want.Len(), bytes.Equal(got, want.Bytes()))
			}
			if !partCopies {
				return
			}
			// The two leading 6 MiB sources are copied whole; the rest travels in parts that
			// are all at least 5 MiB but the last.
			if copies.Load() < 2 {
				t.Fatalf("%d part copies, want the large sources copied server-side", copies.Load())
			}
			for i, n := range uploaded {
				if i < len(uploaded)-1 && n < 5*mib {
					t.Fatalf("uploaded part %d of %d bytes, under S3's 5 MiB minimum (parts %v)", i+1, n, uploaded)
				}
			}
			if total := sum(uploaded); total >= want.Len()-12*mib+1 {
				t.Fatalf("uploaded %d bytes of %d: the large sources were not copied server-side", total, want.Len())
			}
		})
	}
}

func sum(ns []int) int {
	t := 0
	for _, n := range ns {
		t += n
	}
	return t
}
