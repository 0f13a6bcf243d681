package coordinator

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/webnovel/webnovel-backup/messages"
)

// Test hooks for tests that kill a real coordinator process in a given phase. Both are read
// from the environment once; unset (as outside those tests) they do nothing.
var (
	// haltAt names the point where the coordinator stops working until its context ends:
	// plan, export, copy, assemble, publish, archive, sealed (an encrypted archive whole,
	// its sidecar not yet written), unstage (S3: published, the staging area not yet
	// removed), or stage (a restore of an encrypted backup: a file decrypted into the
	// storage's staging folder and checked).
	haltAt = os.Getenv("WNB_TEST_HALT")
)

func init() {
	// WNB_TEST_RUN_HEARTBEAT shortens the run heartbeat, so a killed coordinator's run is
	// abandoned within a test's patience.
	if d, err := time.ParseDuration(os.Getenv("WNB_TEST_RUN_HEARTBEAT")); err == nil && d > 0 {
		messages.RunHeartbeat = d
	}
}

// halt stops at point when the test hook names it, saying so on stderr, until ctx ends.
func halt(ctx context.Context, point string) {
	if haltAt == "" || haltAt != point {
		return
	}
	fmt.Fprintf(os.Stderr, "WNB_TEST_HALT reached %s (pid %d)\n", point, os.Getpid())
	<-ctx.Done()
}
