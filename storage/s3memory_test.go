package storage_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// pattern is the content of the synthetic object: byte i is a function of i alone, so both
// ends can produce and check any range without holding the object.
func pattern(off int64, p []byte) {
	for i := range p {
		x := off + int64(i)
		p[i] = byte(x ^ x>>8 ^ x>>16 ^ x>>24)
	}
}

// patternReader yields n bytes of the pattern.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	pattern(r.off, p)
	r.off += int64(len(p))
	return len(p), nil
}

// nullS3 is an S3 endpoint that holds nothing: uploads are checked against the pattern and
// dropped, and every object reads as size bytes of the pattern. Unlike gofakes3, it keeps
// no object in memory, so the process's allocations are the client's.
type nullS3 struct {
	size    int64
	partLen int64 // the client's part size, to place parts
	bad     atomic.Int64
	parts   atomic.Int64
}

func (s *nullS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>null</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
	case r.Method == http.MethodPut && q.Has("partNumber"):
		n, _ := strconv.ParseInt(q.Get("partNumber"), 10, 64)
		if !s.check(r.Body, (n-1)*s.partLen) {
			s.bad.Add(1)
		}
		s.parts.Add(1)
		w.Header().Set("ETag", `"part"`)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>null</Bucket><Key>k</Key><ETag>"x-1"</ETag></CompleteMultipartUploadResult>`)
	case r.Method == http.MethodGet:
		off, end := int64(0), s.size-1
		if rng := r.Header.Get("Range"); rng != "" {
			a, b, _ := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
			off, _ = strconv.ParseInt(a, 10, 64)
			if b != "" {
				end, _ = strconv.ParseInt(b, 10, 64)
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, end, s.size))
		}
		w.Header().Set("Content-Length", strconv.FormatInt(end-off+1, 10))
		w.Header().Set("ETag", `"x-1"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		if r.Header.Get("Range") != "" {
			w.WriteHeader(http.StatusPartialContent)
		}
		io.CopyBuffer(w, &patternReader{off: off, n: end + 1}, make([]byte, 32<<10))
	default:
		http.Error(w, "not in this fake", http.StatusNotImplemented)
	}
}

// check reads body and reports whether it is the pattern from off on.
func (s *nullS3) check(body io.Reader, off int64) bool {
	got, want := make([]byte, 32<<10), make([]byte, 32<<10)
	ok := true
	for {
		n, err := io.ReadFull(body, got)
		pattern(off, want[:n])
		if string(got[:n]) != string(want[:n]) {
			ok = false
		}
		off += int64(n)
		if err != nil {
			return ok && (err == io.EOF || err == io.ErrUnexpectedEOF)
		}
	}
}

// TestS3MemoryFlat moves a 256 MiB object up and down with the default part size and
// concurrency (8 MiB × 4) and checks that the process allocates far less than the object:
// what it allocates in all bounds how much its heap could have grown.
func TestS3MemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 512 MiB through loopback")
	}
	const size = 256 << 20
	const budget = 64 << 20
	s3test.Env(t)
	null := &nullS3{size: size, partLen: 8 << 20}
	srv := httptest.NewServer(null)
	defer srv.Close()
	b, err := storage.Open(context.Background(), "s3://null/p?path_style=true&endpoint="+url.QueryEscape(srv.URL))
	if err != nil {
		t.Fatal(err)
	}

	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}

	up := allocated(func() {
		n, err := b.Put(context.Background(), "big", &patternReader{n: size}, storage.Object{})
		if err != nil || n != size {
			t.Fatalf("upload: %d, %v", n, err)
		}
	})
	if null.bad.Load() != 0 || null.parts.Load() != size/(8<<20) {
		t.Errorf("upload: %d parts, %d of them wrong", null.parts.Load(), null.bad.Load())
	}

	down := allocated(func() {
		r, o, err := b.Open(context.Background(), "big")
		if err != nil || o.Size != size {
			t.Fatalf("open: %+v, %v", o, err)
		}
		defer r.Close()
		got, want := make([]byte, 64<<10), make([]byte, 64<<10)
		var off int64
		for {
			n, err := io.ReadFull(r, got)
			pattern(off, want[:n])
			if string(got[:n]) != string(want[:n]) {
				t.Fatalf("download differs near byte %d", off)
			}
			off += int64(n)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if off != size {
			t.Fatalf("downloaded %d bytes", off)
		}
	})
	t.Logf("256 MiB: upload allocated %d MiB, download %d MiB", up>>20, down>>20)
	if up > budget || down > budget {
		t.Errorf("allocated %d MiB up, %d MiB down; want under %d MiB each", up>>20, down>>20, budget>>20)
	}
}
