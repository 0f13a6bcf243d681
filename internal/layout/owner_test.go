package layout

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStagingAbandonedUnreadableOwner: an owner record that is not a small regular file (a
// FIFO, which would block a plain read for ever; a folder; a file far larger than any record)
// is refused at once, by name, and the staging folder is kept: a sweep never removes a
// folder whose owner it cannot tell is gone.
func TestStagingAbandonedUnreadableOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, path string)
		want string
	}{
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skip("no FIFOs here:", err)
			}
		}, "not a regular file"},
		{"folder", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"oversized", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, maxOwnerSize+1); err != nil {
				t.Fatal(err)
			}
		}, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			staging := t.TempDir() + "/.wnb-staging-run1"
			if err := os.Mkdir(staging, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.make(t, OwnerPath(staging))
			type answer struct {
				gone bool
				why  string
			}
			got := make(chan answer, 1)
			go func() {
				gone, why := StagingAbandoned(staging, time.Now().Add(-48*time.Hour), time.Now())
				got <- answer{gone, why}
			}()
			select {
			case a := <-got:
				if a.gone {
					t.Errorf("staging taken for abandoned (%s): its owner record could not be read", a.why)
				}
				if !strings.Contains(a.why, OwnerPath(staging)) || !strings.Contains(a.why, tc.want) {
					t.Errorf("reason %q: want it to name %s and say %q", a.why, OwnerPath(staging), tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("StagingAbandoned still reading the owner record after 10s")
			}
		})
	}
}
