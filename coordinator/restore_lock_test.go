package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// A restore whose S3 storage lock another process takes over is stopped: its context is
// cancelled with the cause, which names the lock.
func TestS3StorageLockLostStopsTheRestore(t *testing.T) {
	renew := storageLockRenew
	storageLockRenew = 100 * time.Millisecond
	t.Cleanup(func() { storageLockRenew = renew })
	srv := s3test.Start(t, nil, "media")
	ctx, lost := context.WithCancelCause(context.Background())
	defer lost(nil)
	release, err := lockRestoreTarget(ctx, RestoreOptions{StorageURL: srv.URL("media", "site", ""), SkipDB: true, RunID: "mine", lostLock: lost})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	srv.PutWritten(t, "media", "site/"+StorageLockKey, []byte(`{"run":"usurper"}`), time.Now())
	select {
	case <-ctx.Done():
		if cause := context.Cause(ctx); !strings.Contains(cause.Error(), StorageLockKey) || !strings.Contains(cause.Error(), "taken over") {
			t.Fatalf("the restore was stopped with %q; want the lock named as taken over", cause)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the restore went on for 10 s after its storage lock was taken over")
	}
}
