package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// PutIf writes only when its condition holds, as S3 checks it; StatClock gives the service's
// clock beside the object's Last-Modified; a service that refuses conditional headers (501)
// and a local folder answer ErrNoConditionalWrites.
func TestPutIf(t *testing.T) {
	ctx := context.Background()
	f := newFakeS3(t, nil, "cond")
	b := f.opener("cond", "")(t)
	etag, err := b.PutIf(ctx, "lock", []byte("one"), storage.Precondition{Absent: true})
	if err != nil || etag == "" {
		t.Fatalf("conditional create: %q, %v", etag, err)
	}
	if _, err := b.PutIf(ctx, "lock", []byte("two"), storage.Precondition{Absent: true}); !errors.Is(err, storage.ErrPrecondition) {
		t.Fatalf("second conditional create: %v; want ErrPrecondition", err)
	}
	next, err := b.PutIf(ctx, "lock", []byte("three"), storage.Precondition{ETag: etag})
	if err != nil || next == etag {
		t.Fatalf("write if-match the current ETag: %q, %v; want a new ETag", next, err)
	}
	if _, err := b.PutIf(ctx, "lock", []byte("four"), storage.Precondition{ETag: etag}); !errors.Is(err, storage.ErrPrecondition) {
		t.Fatalf("write if-match an old ETag: %v; want ErrPrecondition", err)
	}
	for _, pre := range []storage.Precondition{{}, {Absent: true, ETag: next}} {
		if _, err := b.PutIf(ctx, "lock", []byte("five"), pre); err == nil || errors.Is(err, storage.ErrPrecondition) {
			t.Fatalf("write with precondition %+v: %v; want it refused as no condition", pre, err)
		}
	}
	obj, now, err := b.StatClock(ctx, "lock")
	if err != nil || obj.ETag != next || obj.Size != int64(len("three")) {
		t.Fatalf("stat: %+v, %v; want the object written last", obj, err)
	}
	if d := now.Sub(obj.LastModified); now.IsZero() || d < -time.Second || d > time.Minute {
		t.Fatalf("service clock %v against Last-Modified %v", now, obj.LastModified)
	}

	refusing := newFakeS3(t, s3test.NoConditionalWrites, "old")
	old := refusing.opener("old", "")(t)
	if _, err := old.PutIf(ctx, "lock", []byte("x"), storage.Precondition{Absent: true}); !errors.Is(err, storage.ErrNoConditionalWrites) {
		t.Fatalf("conditional write on a service without them: %v; want ErrNoConditionalWrites", err)
	}
	dir, err := storage.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if _, err := dir.PutIf(ctx, "lock", []byte("x"), storage.Precondition{Absent: true}); !errors.Is(err, storage.ErrNoConditionalWrites) || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("conditional write in a folder: %v; want ErrNoConditionalWrites naming the key", err)
	}
}
