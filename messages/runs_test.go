package messages

import (
	"strings"
	"testing"
	"time"
)

// A worker may write for a running run at the task's generation or an older record; never for
// an ended run or after a resume claimed it.
func TestAcceptsTask(t *testing.T) {
	for _, tc := range []struct {
		state    string
		recGen   int
		taskGen  int
		wantDeny string
	}{
		{RunRunning, 0, 0, ""},
		{RunRunning, 2, 2, ""},
		{RunRunning, 1, 2, ""},
		{RunRunning, 2, 1, "generation moved on"},
		{RunComplete, 0, 0, "is complete"},
		{RunFailed, 1, 1, "is failed"},
	} {
		r := &RunRecord{ID: "r1", State: tc.state, Generation: tc.recGen}
		got := r.AcceptsTask(tc.taskGen)
		if (got == "") != (tc.wantDeny == "") || !strings.Contains(got, tc.wantDeny) {
			t.Errorf("%s gen %d, task gen %d: %q, want %q", tc.state, tc.recGen, tc.taskGen, got, tc.wantDeny)
		}
	}
}

func TestResumable(t *testing.T) {
	now := time.Now()
	stale, fresh := now.Add(-time.Hour), now
	for _, tc := range []struct {
		rec  RunRecord
		want bool
	}{
		{RunRecord{Kind: "backup", State: RunRunning, Heartbeat: stale}, true},
		{RunRecord{Kind: "backup", State: RunRunning, Heartbeat: fresh}, false},
		{RunRecord{Kind: "backup", State: RunFailed, Staging: "/b/s"}, true},
		{RunRecord{Kind: "backup", State: RunFailed}, false},
		{RunRecord{Kind: "backup", State: RunComplete, Staging: "/b/s"}, false},
	} {
		if got := tc.rec.Resumable(now); got != tc.want {
			t.Errorf("%+v: resumable %v, want %v", tc.rec, got, tc.want)
		}
	}
}
