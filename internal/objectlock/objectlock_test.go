package objectlock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/objectlock"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

const key = ".lock"

// bucket is a fresh S3 bucket on a loopback gofakes3.
func bucket(t *testing.T) (*s3test.Server, *storage.Bucket) {
	t.Helper()
	return bucketBehind(t, nil)
}

// bucketBehind is bucket with the server behind wrap.
func bucketBehind(t *testing.T, wrap func(http.Handler) http.Handler) (*s3test.Server, *storage.Bucket) {
	t.Helper()
	srv := s3test.Start(t, wrap, "media")
	b, err := storage.Open(context.Background(), srv.URL("media", "site", ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return srv, b
}

// put writes the lock object as another process would, through the S3 API.
func put(t *testing.T, b *storage.Bucket, body []byte) {
	t.Helper()
	if _, err := b.Put(context.Background(), key, bytes.NewReader(body), storage.Object{}); err != nil {
		t.Fatal(err)
	}
}

func take(t *testing.T, b *storage.Bucket, run string, o objectlock.Options) *objectlock.Lock {
	t.Helper()
	o.Holder = objectlock.Holder{Run: run, Host: "host-" + run, PID: 4242}
	l, err := objectlock.Take(context.Background(), b, key, o)
	if err != nil {
		t.Fatalf("take as %s: %v", run, err)
	}
	return l
}

// A held lock refuses another taker, naming the holder; released, the object is gone and
// the next taker gets it.
func TestTakeRefusesWhileHeld(t *testing.T) {
	_, b := bucket(t)
	a := take(t, b, "first", objectlock.Options{})
	_, err := objectlock.Take(context.Background(), b, key, objectlock.Options{Holder: objectlock.Holder{Run: "second"}})
	var le *objectlock.LockedError
	if !errors.As(err, &le) || !errors.Is(err, objectlock.ErrLocked) {
		t.Fatalf("second take: %v; want a LockedError", err)
	}
	for _, want := range []string{"run first", "on host-first", "pid 4242", key} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %q", err, want)
		}
	}
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err := objectlock.Check(context.Background(), b, key, 0); err != nil || st != nil {
		t.Fatalf("after release: %+v, %v; want no lock object", st, err)
	}
	take(t, b, "second", objectlock.Options{}).Release(context.Background())
}

// Of many takers at once, exactly one gets the lock.
func TestOneOfManyTakers(t *testing.T) {
	_, b := bucket(t)
	var won, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := objectlock.Take(context.Background(), b, key, objectlock.Options{Holder: objectlock.Holder{PID: i + 1}})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, objectlock.ErrLocked):
				refused.Add(1)
			default:
				t.Errorf("take: %v", err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || refused.Load() != 7 {
		t.Fatalf("%d takers got the lock and %d were refused; want 1 and 7", won.Load(), refused.Load())
	}
}

// A holder renews its lock: past StaleAfter it is still held, and its object has changed.
func TestRenewKeepsTheLock(t *testing.T) {
	_, b := bucket(t)
	o := objectlock.Options{Renew: 200 * time.Millisecond, StaleAfter: 1500 * time.Millisecond}
	a := take(t, b, "first", o)
	defer a.Release(context.Background())
	first, err := b.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // twice StaleAfter, with the service's one-second clock
	now, err := b.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if now.ETag == first.ETag {
		t.Fatal("the lock object was not rewritten in 3 s with a renewal every 200 ms")
	}
	o.Holder.Run = "second"
	if _, err := objectlock.Take(context.Background(), b, key, o); !errors.Is(err, objectlock.ErrLocked) {
		t.Fatalf("take of a renewed lock: %v; want ErrLocked", err)
	}
}

// A lock object nobody renews (its holder died) is taken over once stale, and the new
// object names the new holder.
func TestStaleLockTakenOver(t *testing.T) {
	srv, b := bucket(t)
	dead, _ := json.Marshal(objectlock.Holder{Run: "crashed", Host: "gone", PID: 1})
	o := objectlock.Options{StaleAfter: time.Minute}
	o.Holder.Run = "later"
	srv.PutWritten(t, "media", "site/"+key, dead, time.Now().Add(-30*time.Second))
	if _, err := objectlock.Take(context.Background(), b, key, o); !errors.Is(err, objectlock.ErrLocked) || !strings.Contains(err.Error(), "run crashed") {
		t.Fatalf("take of a lock renewed 30 s ago: %v; want ErrLocked naming run crashed", err)
	}
	srv.PutWritten(t, "media", "site/"+key, dead, time.Now().Add(-2*time.Minute))
	l, err := objectlock.Take(context.Background(), b, key, o)
	if err != nil {
		t.Fatalf("take of a lock unrenewed for 2 min: %v", err)
	}
	defer l.Release(context.Background())
	st, err := objectlock.Check(context.Background(), b, key, time.Minute)
	if err != nil || st == nil || st.Holder.Run != "later" || st.Stale {
		t.Fatalf("after the takeover: %+v, %v; want a fresh lock of run later", st, err)
	}
}

// A lock object that does not say who holds it (not JSON, or larger than any holder) still
// locks by its age alone: refused while fresh, naming "a process", taken over once stale.
func TestLockObjectThatNamesNobody(t *testing.T) {
	for name, body := range map[string][]byte{
		"not JSON":  []byte("\x1b[31m not a holder"),
		"too large": []byte(`{"run":"` + strings.Repeat("r", 70<<10) + `"}`),
	} {
		t.Run(name, func(t *testing.T) {
			srv, b := bucket(t)
			o := objectlock.Options{StaleAfter: time.Minute}
			srv.PutWritten(t, "media", "site/"+key, body, time.Now().Add(-30*time.Second))
			_, err := objectlock.Take(context.Background(), b, key, o)
			if !errors.Is(err, objectlock.ErrLocked) || !strings.Contains(err.Error(), "held by a process") {
				t.Fatalf("take of a fresh lock that names nobody: %v; want ErrLocked naming a process", err)
			}
			srv.PutWritten(t, "media", "site/"+key, body, time.Now().Add(-2*time.Minute))
			l, err := objectlock.Take(context.Background(), b, key, o)
			if err != nil {
				t.Fatalf("take of a stale lock that names nobody: %v", err)
			}
			l.Release(context.Background())
		})
	}
}

// A holder whose lock is taken over is told (Lost), and its Release leaves the new
// holder's object alone.
func TestLostWhenTakenOver(t *testing.T) {
	_, b := bucket(t)
	lost := make(chan error, 1)
	a := take(t, b, "first", objectlock.Options{Renew: 100 * time.Millisecond, Lost: func(err error) { lost <- err }})
	other, _ := json.Marshal(objectlock.Holder{Run: "other"})
	put(t, b, other)
	waitLost(t, lost, "taken over")
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := objectlock.Check(context.Background(), b, key, 0)
	if err != nil || st == nil || st.Holder.Run != "other" {
		t.Fatalf("after the old holder's release: %+v, %v; want run other's lock kept", st, err)
	}
}

// A holder that cannot rewrite its lock for StaleAfter (the service refuses it, or cannot be
// reached) is told it has lost it: by then another may have taken it over.
func TestLostWhenNotRenewed(t *testing.T) {
	var refuse atomic.Bool
	_, b := bucketBehind(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refuse.Load() && r.Method == http.MethodPut {
				w.WriteHeader(http.StatusForbidden)
				w.Write([]byte(`<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	lost := make(chan error, 1)
	a := take(t, b, "first", objectlock.Options{Renew: 100 * time.Millisecond, StaleAfter: 500 * time.Millisecond,
		Lost: func(err error) { lost <- err }})
	defer a.Release(context.Background())
	refuse.Store(true)
	waitLost(t, lost, "could not be renewed")
}

// waitLost waits up to 10 s for the holder to be told it lost its lock, saying why.
func waitLost(t *testing.T, lost <-chan error, why string) {
	t.Helper()
	select {
	case err := <-lost:
		if !strings.Contains(err.Error(), why) {
			t.Errorf("lost with %q; want it to say %q", err, why)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the holder was not told within 10 s that its lock was lost (%s)", why)
	}
}

// A local folder cannot hold such a lock: Take says so.
func TestTakeNeedsConditionalWrites(t *testing.T) {
	b, err := storage.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := objectlock.Take(context.Background(), b, key, objectlock.Options{}); !errors.Is(err, storage.ErrNoConditionalWrites) {
		t.Fatalf("take in a folder: %v; want ErrNoConditionalWrites", err)
	}
}
