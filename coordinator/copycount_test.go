package coordinator

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// An encrypted backup's copy counts its bytes before encryption, as its metadata does: the
// planned links' sizes when every one was made, their average with a warning when some fell
// back to copies; new is what the backup holds less what was reused.
func TestCopyCountsEncryptedBackup(t *testing.T) {
	for _, tc := range []struct {
		name             string
		reused           int64
		wantNew, wantOld int64
		warn             bool
	}{
		{name: "links as planned", reused: 4, wantNew: 1000 - 400, wantOld: 400},
		{name: "one link fell back", reused: 3, wantNew: 1000 - 300, wantOld: 300, warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			meta := &layout.Metadata{Encryption: &layout.Encryption{}}
			meta.Files.Count, meta.Files.Bytes = 5, 1000
			r := &copyRun{
				log:  slog.New(slog.NewTextHandler(&logs, nil)),
				src:  &copySource{meta: meta},
				plan: &copyPlan{reusePlanned: 4, reusePlain: 400},
				// The workers count the stored (encrypted) bytes.
				rep: &CopyReport{Reused: tc.reused, ReusedBytes: tc.reused * 300},
			}
			r.countNew()
			if r.rep.Copied != 5-tc.reused || r.rep.Bytes != tc.wantNew || r.rep.ReusedBytes != tc.wantOld {
				t.Errorf("copied %d (%d bytes), reused %d bytes; want %d (%d bytes), %d bytes",
					r.rep.Copied, r.rep.Bytes, r.rep.ReusedBytes, 5-tc.reused, tc.wantNew, tc.wantOld)
			}
			if got := strings.Contains(logs.String(), "estimated"); got != tc.warn {
				t.Errorf("warning logged: %v, want %v (%s)", got, tc.warn, logs.String())
			}
		})
	}
}
