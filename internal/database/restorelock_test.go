package database

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
)

// TestLockRestore: one restore lock per database at a time, its holder named to the second
// comer; a backup's check sees it and holds nothing; release lets go of it by name.
func TestLockRestore(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	db := openT(t, url)
	release, err := LockRestore(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = LockRestore(ctx, url)
	if !errors.Is(err, ErrRestoreRunning) || !strings.Contains(err.Error(), `held by session pid`) || !strings.Contains(err.Error(), applicationName) {
		t.Fatalf("second lock: %v; want ErrRestoreRunning naming the holder", err)
	}
	if err := db.CheckNoRestore(ctx); !errors.Is(err, ErrRestoreRunning) {
		t.Fatalf("check during the restore: %v; want ErrRestoreRunning", err)
	}
	release()
	for range 2 { // the check's lock is gone with its transaction
		if err := db.CheckNoRestore(ctx); err != nil {
			t.Fatalf("check after the restore: %v", err)
		}
	}
	var left int
	if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d advisory locks left after release and checks (%v)", left, err)
	}
	again, err := LockRestore(ctx, url)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	again()
}
