package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/storage"
	"github.com/webnovel/webnovel-backup/storage/storagetest"
)

// loseFirstAnswer lets the first request that match accepts through to the service, then
// drops the connection instead of answering: the client retries a request that already took
// effect. If replace is set, the object is replaced behind the client's back before the retry.
type loseFirstAnswer struct {
	next    http.Handler
	match   func(r *http.Request) bool
	replace func(key string)
	seen    atomic.Int64
}

// isComplete tells CompleteMultipartUpload requests.
func isComplete(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploadId")
}

// isCreateUpload tells CreateMultipartUpload requests.
func isCreateUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Query().Has("uploads")
}

func (l *loseFirstAnswer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !l.match(r) || l.seen.Add(1) > 1 {
		l.next.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.next.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "<Error>") {
		panic("the request to lose failed: " + rec.Body.String())
	}
	if l.replace != nil {
		l.replace(strings.TrimPrefix(r.URL.Path, "/"))
	}
	panic(http.ErrAbortHandler) // the connection closes without an answer
}

// A retried CompleteMultipartUpload that gets NoSuchUpload because the first one succeeded
// (its answer lost) counts as success when the object is the one uploaded — and only then.
func TestS3CompleteAnswerLost(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replaced bool
	}{
		{"the upload's object", false},
		{"another object of the same size", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := storagetest.Content("multipart", 300<<10) // several 64 KiB parts
			lose := &loseFirstAnswer{match: isComplete}
			f := newFakeS3(t, func(h http.Handler) http.Handler { lose.next = h; return lose }, "lossy")
			if tc.replaced {
				lose.replace = func(path string) {
					bucket, key, _ := strings.Cut(path, "/")
					f.Put(t, bucket, key, bytes.Repeat([]byte("x"), len(data)))
				}
			}
			b, err := storage.Open(context.Background(), f.url("lossy", "p", ""))
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Put(context.Background(), "big", bytes.NewReader(data), storage.Object{})
			if n := lose.seen.Load(); n < 2 {
				t.Fatalf("%d completes: the lost answer was not retried", n)
			}
			if tc.replaced {
				if err == nil || !strings.Contains(err.Error(), "NoSuchUpload") {
					t.Fatalf("Put = %v, want the NoSuchUpload failure: the object is not the upload's", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put = %v, want success: the first complete made the object", err)
			}
			if got, _ := storagetest.Get(t, b, "big"); !bytes.Equal(got, data) {
				t.Error("the object differs from what was uploaded")
			}
			f.assertNoUploads(t, "lossy")
		})
	}
}

// A CreateMultipartUpload whose answer is lost is retried, and the upload the lost answer
// named is not left behind, while the object is written whole; also under a key with a
// control character, which the listing of uploads carries url-encoded.
func TestS3CreateUploadAnswerLost(t *testing.T) {
	for _, key := range []string{"big", "ctl\x01big"} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			data := storagetest.Content("created twice", 300<<10)
			lose := &loseFirstAnswer{match: isCreateUpload}
			f := newFakeS3(t, func(h http.Handler) http.Handler { lose.next = h; return lose }, "lossy")
			f.EncodeListings()
			b, err := storage.Open(context.Background(), f.url("lossy", "p", ""))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Put(context.Background(), key, bytes.NewReader(data), storage.Object{}); err != nil {
				t.Fatal(err)
			}
			if n := lose.seen.Load(); n < 2 {
				t.Fatalf("%d creates: the lost answer was not retried", n)
			}
			if got, _ := storagetest.Get(t, b, key); !bytes.Equal(got, data) {
				t.Error("the object differs from what was uploaded")
			}
			f.assertNoUploads(t, "lossy")
		})
	}
}
