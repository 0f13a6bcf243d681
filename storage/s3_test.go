package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
	"github.com/webnovel/webnovel-backup/storage/storagetest"
)

// fakeS3 is an in-process S3 (gofakes3) on a loopback port.
type fakeS3 struct {
	*s3test.Server
	backend *s3mem.Backend
	n       atomic.Int64 // prefixes handed out
}

// newFakeS3 serves gofakes3 (behind wrap, if given) with the buckets named.
func newFakeS3(t *testing.T, wrap func(http.Handler) http.Handler, buckets ...string) *fakeS3 {
	t.Helper()
	srv := s3test.Start(t, wrap, buckets...)
	return &fakeS3{Server: srv, backend: srv.Backend}
}

// url is the location of prefix in bucket, with small parts so that every path (multipart,
// ranged reads) runs on small objects.
func (f *fakeS3) url(bucket, prefix, extra string) string {
	e := "part_size=65536&parallel_above=131072"
	if extra != "" {
		e += "&" + extra
	}
	return f.URL(bucket, prefix, e)
}

func (f *fakeS3) put(t *testing.T, bucket, key string, data []byte) {
	t.Helper()
	f.Put(t, bucket, key, data)
}

// opener returns buckets under fresh prefixes of one S3 bucket, each with neighbours that
// share its name as a text prefix (and a "folder" marker inside it) — none of which may be
// seen or touched through it.
func (f *fakeS3) opener(bucket, extra string) func(t *testing.T) *storage.Bucket {
	return func(t *testing.T) *storage.Bucket {
		t.Helper()
		prefix := fmt.Sprintf("runs/r%d", f.n.Add(1))
		decoys := []string{prefix + "-decoy/x", prefix + "x", prefix + ".y"}
		for _, k := range decoys {
			f.put(t, bucket, k, []byte("decoy"))
		}
		f.put(t, bucket, prefix+"/folder/", nil)
		b, err := storage.Open(context.Background(), f.url(bucket, prefix, extra))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			b.Close()
			for _, k := range decoys {
				if _, err := f.backend.HeadObject(bucket, k); err != nil {
					t.Errorf("decoy %s outside the bucket's prefix: %v", k, err)
				}
			}
		})
		return b
	}
}

func TestS3Conformance(t *testing.T) {
	f := newFakeS3(t, nil, "conformance")
	storagetest.Run(t, f.opener("conformance", ""))
	f.assertNoUploads(t, "conformance")
}

// assertNoUploads checks that no multipart upload was left behind (aborted writers, failed
// copies).
func (f *fakeS3) assertNoUploads(t *testing.T, bucket string) {
	t.Helper()
	resp, err := http.Get(f.Endpoint() + "/" + bucket + "?uploads")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if bytes.Contains(body, []byte("<UploadId>")) {
		t.Errorf("multipart uploads left in %s: %s", bucket, body)
	}
}

// faults answers 500 to every failEvery-th request, lets every stallEvery-th hang (the
// client times out and retries; the stalled request is never served), and stops every
// bodyStallEvery-th object GET halfway through its body. Counters, not chance, decide.
type faults struct {
	next                                  http.Handler
	failEvery, stallEvery, bodyStallEvery int64
	stall                                 time.Duration
	n, gets                               atomic.Int64
	failed, stalled, bodyStalled          atomic.Int64
}

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.n.Add(1)
	switch {
	case n%f.failEvery == 0:
		f.failed.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
		return
	case n%f.stallEvery == 0:
		f.stalled.Add(1)
		sleep(r.Context(), f.stall)
		return
	}
	if isGetObject(r) && f.gets.Add(1)%f.bodyStallEvery == 0 {
		f.bodyStalled.Add(1)
		w = &stallingWriter{ResponseWriter: w, ctx: r.Context(), stall: f.stall}
	}
	f.next.ServeHTTP(w, r)
}

// isGetObject tells GetObject requests (the SDK marks them x-id=GetObject) from listings.
func isGetObject(r *http.Request) bool {
	return r.Method == http.MethodGet && r.URL.Query().Get("x-id") == "GetObject"
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// stallingWriter sends the first half of a body (at most 32 KiB), then goes silent.
type stallingWriter struct {
	http.ResponseWriter
	ctx     context.Context
	stall   time.Duration
	limit   int
	written int
	stalled bool
}

// WriteHeader drops the error status gofakes3 tries to send after a failed write.
func (s *stallingWriter) WriteHeader(code int) {
	if !s.stalled {
		s.ResponseWriter.WriteHeader(code)
	}
}

func (s *stallingWriter) Write(p []byte) (int, error) {
	if s.limit == 0 {
		n, _ := strconv.Atoi(s.Header().Get("Content-Length"))
		s.limit = max(1, min(n/2, 32<<10))
	}
	if s.stalled {
		return 0, errors.New("injected stall")
	}
	if s.written+len(p) <= s.limit {
		s.written += len(p)
		return s.ResponseWriter.Write(p)
	}
	k, _ := s.ResponseWriter.Write(p[:s.limit-s.written])
	s.written += k
	http.NewResponseController(s.ResponseWriter).Flush()
	s.stalled = true
	sleep(s.ctx, s.stall)
	return k, errors.New("injected stall")
}

func TestS3Faults(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out injected stalls")
	}
	const timeout = 200 * time.Millisecond
	flt := &faults{failEvery: 3, stallEvery: 23, bodyStallEvery: 5, stall: 4 * timeout}
	f := newFakeS3(t, func(h http.Handler) http.Handler { flt.next = h; return flt }, "faulty")
	extra := "timeout=" + timeout.String()

	// The whole suite, with a third of the requests failing and some stalling.
	storagetest.Run(t, f.opener("faulty", extra))

	// A listing of several pages.
	for i := range 1100 {
		f.put(t, "faulty", fmt.Sprintf("many/k%04d", i), []byte("x"))
	}
	b, err := storage.Open(context.Background(), f.url("faulty", "many", extra))
	if err != nil {
		t.Fatal(err)
	}
	keys := storagetest.Keys(t, b, "")
	if len(keys) != 1100 || keys[0] != "k0000" || keys[1099] != "k1099" {
		t.Errorf("listing through faults: %d keys, %q ... %q", len(keys), keys[0], keys[len(keys)-1])
	}

	// Streaming and ranged reads stalled mid-body resume with the same bytes.
	for _, size := range []int{100 << 10, 700 << 10} {
		key := fmt.Sprintf("stalled-%d", size)
		data := storagetest.Content(key, size)
		storagetest.Put(t, b, key, data, storage.Object{})
		for range 4 {
			if got, _ := storagetest.Get(t, b, key); !bytes.Equal(got, data) {
				t.Fatalf("%s read back differs", key)
			}
		}
	}
	t.Logf("%d requests: %d answered 500, %d stalled, %d stalled mid-body", flt.n.Load(), flt.failed.Load(), flt.stalled.Load(), flt.bodyStalled.Load())
	if flt.failed.Load() == 0 || flt.stalled.Load() == 0 || flt.bodyStalled.Load() == 0 {
		t.Error("some faults were never injected")
	}
	f.assertNoUploads(t, "faulty")
}

// copyPartShim adds UploadPartCopy to gofakes3, which lacks it, by reading the source range
// through the fake itself and uploading it as a part.
func copyPartShim(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src := r.Header.Get("X-Amz-Copy-Source")
		if r.Method != http.MethodPut || src == "" || r.URL.Query().Get("uploadId") == "" {
			next.ServeHTTP(w, r)
			return
		}
		srcPath, err := url.PathUnescape(src)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		get := httptest.NewRequest(http.MethodGet, (&url.URL{Path: "/" + strings.TrimPrefix(srcPath, "/")}).String(), nil)
		get.Header.Set("Range", r.Header.Get("X-Amz-Copy-Source-Range"))
		got := httptest.NewRecorder()
		next.ServeHTTP(got, get)
		if got.Code != http.StatusPartialContent {
			w.WriteHeader(got.Code)
			w.Write(got.Body.Bytes())
			return
		}
		if want := r.Header.Get("X-Amz-Copy-Source-If-Match"); want != "" && got.Header().Get("ETag") != want {
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		put := httptest.NewRequest(http.MethodPut, r.URL.String(), bytes.NewReader(got.Body.Bytes()))
		put.Header.Set("Content-Length", strconv.Itoa(got.Body.Len()))
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, put)
		if rec.Code != http.StatusOK {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><CopyPartResult><ETag>%s</ETag><LastModified>%s</LastModified></CopyPartResult>`,
			rec.Header().Get("ETag"), time.Now().UTC().Format(time.RFC3339))
	})
}

func TestS3CopyFrom(t *testing.T) {
	ctx := context.Background()
	var parts atomic.Int64
	f := newFakeS3(t, func(h http.Handler) http.Handler {
		shim := copyPartShim(h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Amz-Copy-Source-Range") != "" {
				parts.Add(1)
			}
			shim.ServeHTTP(w, r)
		})
	}, "src", "dst")
	src, err := storage.Open(ctx, f.url("src", "from", ""))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := storage.Open(ctx, f.url("dst", "to", ""))
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2019, 5, 6, 7, 8, 9, 123456789, time.UTC)
	small := storagetest.Content("small", 1000)
	big := storagetest.Content("big", 300<<10+7)
	storagetest.Put(t, src, "a/small.json", small, storage.Object{Mode: 0o600, ModTime: mtime})
	storagetest.Put(t, src, "a/big file.bin", big, storage.Object{Mode: 0o640, ModTime: mtime})

	// Objects above the (lowered) CopyObject limit are copied in ranges of 100 KiB.
	storage.SetCopyLimits(t, 200<<10, 100<<10)
	for _, tc := range []struct {
		key   string
		data  []byte
		mode  os.FileMode
		parts int64
	}{{"a/small.json", small, 0o600, 0}, {"a/big file.bin", big, 0o640, 4}} {
		parts.Store(0)
		o, err := dst.CopyFrom(ctx, src, tc.key, "copied/"+tc.key)
		if err != nil {
			t.Fatalf("copy %s: %v", tc.key, err)
		}
		if parts.Load() != tc.parts {
			t.Errorf("copy %s used %d part copies, want %d", tc.key, parts.Load(), tc.parts)
		}
		got, st := storagetest.Get(t, dst, "copied/"+tc.key)
		if !bytes.Equal(got, tc.data) {
			t.Errorf("copy of %s differs", tc.key)
		}
		for _, obj := range []storage.Object{o, st} {
			if obj.Size != int64(len(tc.data)) || obj.Mode != tc.mode || !obj.ModTime.Equal(mtime) {
				t.Errorf("copy of %s: %+v", tc.key, obj)
			}
		}
	}
	f.assertNoUploads(t, "dst")

	// Other pairs stream instead.
	local, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other := newFakeS3(t, nil, "dst")
	elsewhere, err := storage.Open(ctx, other.url("dst", "to", ""))
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2]*storage.Bucket{
		"s3 to local":              {src, local},
		"local to s3":              {local, dst},
		"s3 to another S3 service": {src, elsewhere},
	} {
		if _, err := pair[1].CopyFrom(ctx, pair[0], "a/small.json", "x"); !errors.Is(err, storage.ErrNoServerSideCopy) {
			t.Errorf("%s: %v, want ErrNoServerSideCopy", name, err)
		}
	}
}

// Without the shim gofakes3 refuses part copies: the copy reports ErrNoServerSideCopy (the
// caller streams) and leaves neither an object nor an upload behind.
func TestS3CopyFromWithoutPartCopy(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t, nil, "src", "dst")
	src, err := storage.Open(ctx, f.url("src", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := storage.Open(ctx, f.url("dst", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Put(t, src, "big", storagetest.Content("big", 300<<10), storage.Object{})
	storage.SetCopyLimits(t, 200<<10, 100<<10)
	if _, err := dst.CopyFrom(ctx, src, "big", "big"); !errors.Is(err, storage.ErrNoServerSideCopy) {
		t.Fatalf("CopyFrom = %v, want ErrNoServerSideCopy", err)
	}
	if keys := storagetest.Keys(t, dst, ""); len(keys) != 0 {
		t.Errorf("a failed copy left %q", keys)
	}
	f.assertNoUploads(t, "dst")
}

// checksumShim keeps the x-amz-checksum-sha256 each PutObject carries and reports it on
// HeadObject with checksums enabled, as S3 does (gofakes3 ignores checksums). It counts
// object GETs, to show whether SHA256 read the object.
type checksumShim struct {
	next http.Handler
	mu   sync.Mutex
	sums map[string]string
	gets atomic.Int64
}

func (c *checksumShim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && !q.Has("uploadId"):
		if v := r.Header.Get("X-Amz-Checksum-Sha256"); v != "" {
			c.mu.Lock()
			c.sums[r.URL.Path] = v
			c.mu.Unlock()
		}
	case r.Method == http.MethodHead && r.Header.Get("X-Amz-Checksum-Mode") == "ENABLED":
		c.mu.Lock()
		v := c.sums[r.URL.Path]
		c.mu.Unlock()
		if v != "" {
			w.Header().Set("X-Amz-Checksum-Sha256", v)
			w.Header().Set("X-Amz-Checksum-Type", "FULL_OBJECT")
		}
	case isGetObject(r):
		c.gets.Add(1)
	}
	c.next.ServeHTTP(w, r)
}

func TestS3SHA256(t *testing.T) {
	ctx := context.Background()
	shim := &checksumShim{sums: map[string]string{}}
	f := newFakeS3(t, func(h http.Handler) http.Handler { shim.next = h; return shim }, "sums")
	b, err := storage.Open(ctx, f.url("sums", "p", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size  int
		reads bool // whether SHA256 must read the object
	}{
		{1000, false},     // one PutObject: S3 keeps its SHA-256
		{200 << 10, true}, // multipart: only a checksum of part checksums, so it reads
	} {
		key := fmt.Sprintf("obj-%d", tc.size)
		data := storagetest.Content(key, tc.size)
		storagetest.Put(t, b, key, data, storage.Object{})
		shim.gets.Store(0)
		got, err := b.SHA256(ctx, key)
		want := sha256.Sum256(data)
		if err != nil || got != hex.EncodeToString(want[:]) {
			t.Errorf("SHA256(%s) = %s, %v; want %x", key, got, err, want)
		}
		if n := shim.gets.Load(); (n > 0) != tc.reads {
			t.Errorf("SHA256(%s) made %d object GETs; want reading: %v", key, n, tc.reads)
		}
	}
	// The upload asked S3 to check a SHA-256 of what it sent.
	shim.mu.Lock()
	sent := shim.sums["/sums/p/obj-1000"]
	shim.mu.Unlock()
	want := sha256.Sum256(storagetest.Content("obj-1000", 1000))
	if sent != base64.StdEncoding.EncodeToString(want[:]) {
		t.Errorf("PutObject sent x-amz-checksum-sha256 %q", sent)
	}
}

func TestS3Open(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t, nil, "b")
	for _, tc := range []struct {
		url, err string
	}{
		{"s3://b/p?colour=red&region=x&size=1", "colour, size"},
		{"s3://b/p?path_style=maybe", "path_style"},
		{"s3://b/p?part_size=12", "part_size"},
		{"s3://b/p?concurrency=0", "concurrency"},
		{"s3://b/p?timeout=soon", "timeout"},
		{"s3://b/p?checksum=md5", "checksum"},
		{"s3://b/p?endpoint=ftp://x", "endpoint"},
		{"s3://b/p?endpoint=ftp://u:secret@127.0.0.1:9", "endpoint"},
		{"s3://b/p?endpoint=http%3A%2F%2Fu%3Asecret%40127.0.0.1%3A9%25zz", "endpoint"},
		{"s3://b/p?endpoint=http://u:1/secret@127.0.0.1:9", "endpoint"},
		{"s3://AKIAX:secret@b/p", "credentials"},
		{"s3:///p", "bucket"},
		{"s3://b/../p", "prefix"},
	} {
		_, err := storage.Open(ctx, tc.url)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("Open(%q) = %v, want an error about %s", tc.url, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("Open(%q) error shows the secret: %v", tc.url, err)
		}
	}
	// The SDK's own refusal of an endpoint from the environment would print it whole.
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://minio:secret@127.0.0.1:9/ bad?X-Amz-Security-Token=secret")
	if eb, err := storage.Open(ctx, "s3://b/p"); err == nil {
		_, err = eb.Stat(ctx, "x")
		if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL_S3") {
			t.Errorf("an endpoint in the environment with credentials: %v", err)
		}
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("an endpoint in the environment with credentials: %v", err)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	b, err := storage.Open(ctx, f.url("b", "some/prefix", ""))
	if err != nil {
		t.Fatal(err)
	}
	if b.Backend() != "S3Boto3Storage" {
		t.Errorf("Backend() = %q", b.Backend())
	}
	if s := b.String(); !strings.HasPrefix(s, "s3://b/some/prefix") || strings.Contains(s, "AKIATEST") || strings.Contains(s, "test-secret") {
		t.Errorf("String() = %q", s)
	}
	// A missing bucket is an error, not an empty listing.
	nb, err := storage.Open(ctx, f.url("no-such-bucket", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := nb.Walk(ctx, "", func(storage.Object) error { return nil }); err == nil {
		t.Error("Walk of a missing bucket succeeded")
	}
}

// TestS3CABundle reaches an HTTPS endpoint whose certificate only AWS_CA_BUNDLE vouches for.
func TestS3CABundle(t *testing.T) {
	ctx := context.Background()
	s3test.Env(t)
	backend := s3mem.New()
	if err := backend.CreateBucket("tls"); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.PutObject("tls", "p/hello", map[string]string{}, strings.NewReader("hi"), 2, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()
	loc := "s3://tls/p?path_style=true&timeout=2s&endpoint=" + url.QueryEscape(srv.URL)

	untrusted, err := storage.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := untrusted.Stat(tctx, "hello"); err == nil {
		t.Fatal("an unknown certificate was accepted")
	}

	bundle := filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(bundle, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", bundle)
	trusted, err := storage.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	if keys := storagetest.Keys(t, trusted, ""); len(keys) != 1 || keys[0] != "hello" {
		t.Errorf("Walk over TLS = %q", keys)
	}
	if got, _ := storagetest.Get(t, trusted, "hello"); string(got) != "hi" {
		t.Errorf("Get over TLS = %q", got)
	}
}

// An S3 source may hold keys no file can stand for: WalkSpecial reports each (a folder marker
// that holds bytes, a key with an empty or ".." segment) so the backup can warn, naming it,
// and passes over an empty folder marker, a folder as a local one is.
func TestS3WalkSpecial(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t, nil, "b")
	for key, data := range map[string]string{"p/ok.txt": "ok", "p/empty/": "", "p/marker/": "bytes", "p/x//y": "z", "p/x/../y": "w"} {
		f.put(t, "b", key, []byte(data))
	}
	b, err := storage.Open(ctx, f.url("b", "p", ""))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	specials := map[string]string{}
	err = b.WalkSpecial(ctx, "", func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	}, func(sp storage.Special) error {
		specials[sp.Key] = sp.Kind + ": " + sp.Warning()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"ok.txt"}) {
		t.Errorf("walked %q, want only ok.txt", keys)
	}
	want := map[string]string{"p/marker/": "folder marker", "p/x//y": "unaddressable key", "p/x/../y": "unaddressable key"}
	if len(specials) != len(want) {
		t.Errorf("reported %q, want %v", specials, want)
	}
	for key, kind := range want {
		if got := specials[key]; !strings.HasPrefix(got, kind+": skipped "+kind+" "+key+": ") || !strings.HasSuffix(got, "not backed up") {
			t.Errorf("%s reported as %q, want a %s warning naming it", key, got, kind)
		}
	}
	if w := specials["p/marker/"]; !strings.Contains(w, "5 bytes") {
		t.Errorf("folder marker warning %q does not say what it holds", w)
	}
}

// Each retry of an S3 request is a warning naming the storage, the attempt and the error: a
// service that stops answering is not minutes of silence.
func TestS3RetriesAreSaid(t *testing.T) {
	var failures atomic.Int64
	f := newFakeS3(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/flaky.txt") && failures.Add(1) <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}, "bkt")
	f.put(t, "bkt", "p/flaky.txt", []byte("fine at last"))
	var logged bytes.Buffer
	var mu sync.Mutex
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelWarn})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	b, err := storage.Open(context.Background(), f.url("bkt", "p", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rc, _, err := b.Open(context.Background(), "flaky.txt")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(data) != "fine at last" {
		t.Fatalf("read after two failures: %q, %v", data, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logged.String(), "S3 request failed; retrying"); n != 2 || !strings.Contains(logged.String(), "attempt=1") || !strings.Contains(logged.String(), "s3://bkt/p") {
		t.Fatalf("%d retry warnings, want 2 naming the storage and the attempt:\n%s", n, logged.String())
	}
}

// writerFunc is an io.Writer of a function.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A service that url-encodes listed keys when asked, as S3 does, hands every key back as it
// is: a control character (which XML cannot carry), "+", "%" and a space. Walking, listing
// the top-level folders and removing a folder each see the exact keys, and removing a folder
// whose name XML cannot carry leaves its neighbour named with U+FFFD in its place.
func TestS3EncodedListings(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t, nil, "b")
	f.EncodeListings()
	names := []string{"ctl\x01\r\x7f.txt", "dir\x02 x/in.txt", "dir\ufffd x/in.txt", "pct%41%zz.txt", "plus+ space.txt"}
	for _, name := range names {
		f.put(t, "b", "p/"+name, []byte(name))
	}
	b, err := storage.Open(ctx, f.url("b", "p", ""))
	if err != nil {
		t.Fatal(err)
	}
	var walked []string
	if err := b.Walk(ctx, "", func(o storage.Object) error {
		walked = append(walked, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(walked)
	if !slices.Equal(walked, names) {
		t.Fatalf("walked %q, want %q", walked, names)
	}
	for _, name := range names {
		rc, _, err := b.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != name {
			t.Errorf("%q holds %q, %v", name, got, err)
		}
	}
	folders, err := b.Folders(ctx)
	if slices.Sort(folders); err != nil || !slices.Equal(folders, []string{"dir\x02 x", "dir\ufffd x"}) {
		t.Fatalf("folders %q, %v; want the two folders, named exactly", folders, err)
	}
	if err := b.RemoveAll(ctx, "dir\x02 x"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Backend.HeadObject("b", "p/dir\x02 x/in.txt"); err == nil {
		t.Error("RemoveAll left the folder's object")
	}
	if _, err := f.Backend.HeadObject("b", "p/dir\ufffd x/in.txt"); err != nil {
		t.Errorf("RemoveAll took the neighbour: %v", err)
	}
}
