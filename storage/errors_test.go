package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/webnovel/webnovel-backup/storage"
)

// The local driver's errors, as the operating system gives them.
func TestErrorCodeLocal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want storage.Code
	}{
		{nil, storage.CodeOK},
		{&fs.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, storage.CodeNotFound},
		{&fs.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}, storage.CodePermission},
		{&fs.PathError{Op: "rename", Path: "/x", Err: syscall.EPERM}, storage.CodePermission},
		{&fs.PathError{Op: "write", Path: "/x", Err: syscall.EROFS}, storage.CodePermission},
		{&fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, storage.CodeNoSpace},
		{&fs.PathError{Op: "write", Path: "/x", Err: syscall.EDQUOT}, storage.CodeNoSpace},
		{&fs.PathError{Op: "write", Path: "/x", Err: syscall.EIO}, storage.CodeTransient},
		{fmt.Errorf("copy: %w", context.Canceled), storage.CodeCanceled},
		{fmt.Errorf("copy: %w", context.DeadlineExceeded), storage.CodeTransient},
		{errors.New("something else"), storage.CodeUnknown},
	} {
		if got := storage.ErrorCode(tc.err); got != tc.want {
			t.Errorf("ErrorCode(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

// S3's error codes, as the SDK gives them when no HTTP status decides.
func TestErrorCodeS3Codes(t *testing.T) {
	for code, want := range map[string]storage.Code{
		"NoSuchKey": storage.CodeNotFound, "NoSuchBucket": storage.CodeNotFound,
		"AccessDenied": storage.CodePermission, "InvalidAccessKeyId": storage.CodePermission,
		"SignatureDoesNotMatch": storage.CodePermission, "SlowDown": storage.CodeTransient,
		"Throttling": storage.CodeTransient, "InternalError": storage.CodeTransient,
		"SomethingNew": storage.CodeUnknown,
	} {
		err := fmt.Errorf("put x: %w", &smithy.GenericAPIError{Code: code, Message: "m"})
		if got := storage.ErrorCode(err); got != want {
			t.Errorf("ErrorCode(%s) = %s, want %s", code, got, want)
		}
	}
}

// statusOnPut answers every object write with a fixed S3 error, and counts the writes.
type statusOnPut struct {
	next   http.Handler
	status int
	code   string
	puts   atomic.Int64
}

func (s *statusOnPut) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		s.next.ServeHTTP(w, r)
		return
	}
	s.puts.Add(1)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(s.status)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+s.code+`</Code><Message>injected</Message></Error>`)
}

// Real answers of an S3 service: each is classified, and one that retrying cannot fix is not
// retried by the driver.
func TestErrorCodeS3Answers(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
		want   storage.Code
	}{
		{http.StatusForbidden, "AccessDenied", storage.CodePermission},
		{http.StatusForbidden, "", storage.CodePermission},
		{http.StatusBadRequest, "InvalidArgument", storage.CodeInvalid},
		{http.StatusNotFound, "NoSuchBucket", storage.CodeNotFound},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.code), func(t *testing.T) {
			flt := &statusOnPut{status: tc.status, code: tc.code}
			f := newFakeS3(t, func(h http.Handler) http.Handler { flt.next = h; return flt }, "refusing")
			b, err := storage.Open(context.Background(), f.url("refusing", "p", ""))
			if err != nil {
				t.Fatal(err)
			}
			_, err = b.Put(context.Background(), "k", strings.NewReader("data"), storage.Object{})
			if got := storage.ErrorCode(err); got != tc.want {
				t.Errorf("ErrorCode(%v) = %s, want %s", err, got, tc.want)
			}
			if n := flt.puts.Load(); n != 1 {
				t.Errorf("%d requests, want 1 (no retry of an answer that will not change)", n)
			}
			// Reads still work: the fault is the write's.
			if _, err := b.Stat(context.Background(), "k"); storage.ErrorCode(err) != storage.CodeNotFound {
				t.Errorf("Stat after the refused write: %v", err)
			}
		})
	}
}
