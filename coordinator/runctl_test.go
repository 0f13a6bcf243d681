package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/messages"
)

// registry starts an embedded JetStream with the queue's streams and run registry, and returns
// a coordinator on it and the registry bucket.
func registry(t *testing.T) (*Coordinator, jetstream.KeyValue) {
	t.Helper()
	js, _ := queuetest.Start(t, queue.Config{})
	kv, err := js.KeyValue(context.Background(), messages.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return New(js, nil), kv
}

// putRun writes a run record as another coordinator would and returns its revision.
func putRun(t *testing.T, kv jetstream.KeyValue, rec messages.RunRecord) uint64 {
	t.Helper()
	rec.Version = messages.Version
	data, err := messages.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(context.Background(), rec.ID, data)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func shortHeartbeat(t *testing.T) {
	t.Helper()
	old := messages.RunHeartbeat
	messages.RunHeartbeat = 50 * time.Millisecond
	t.Cleanup(func() { messages.RunHeartbeat = old })
}

// Two claims on the same revision of a run's record: the first wins, the second gets a
// ClaimError naming the winner; a new run's id can be claimed only once.
func TestClaimIsExclusive(t *testing.T) {
	shortHeartbeat(t)
	c, kv := registry(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		rev  func() uint64 // the revision both claimants read
	}{
		{"new run", func() uint64 { return 0 }},
		{"resume", func() uint64 {
			return putRun(t, kv, messages.RunRecord{ID: "resume", Kind: "backup", State: messages.RunRunning,
				Coordinator: "dead-host pid 1", Heartbeat: time.Now().Add(-time.Hour)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := strings.ReplaceAll(tc.name, " ", "-")
			rev := tc.rev()
			rec := messages.RunRecord{ID: id, Kind: "backup", Generation: 1}
			first, _, err := c.track(ctx, rec, rev)
			if err != nil {
				t.Fatalf("first claim: %v", err)
			}
			defer first.finish("", errors.New("test over"))
			_, _, err = c.track(ctx, rec, rev)
			var ce *ClaimError
			if !errors.As(err, &ce) {
				t.Fatalf("second claim: %v, want a ClaimError", err)
			}
			if want := coordinatorID(); !strings.Contains(ce.Holder, want) || !strings.Contains(err.Error(), id) {
				t.Errorf("second claim refused with %q: want the run and the holder %q named", err, want)
			}
		})
	}
}

// A coordinator whose record is claimed by another (it stalled, a resume took the run) stops:
// its run context ends with the ClaimError, and its finish leaves the new holder's record alone.
func TestTakenOverRunStops(t *testing.T) {
	shortHeartbeat(t)
	c, kv := registry(t)
	tr, runCtx, err := c.track(context.Background(), messages.RunRecord{ID: "taken", Kind: "backup"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	putRun(t, kv, messages.RunRecord{ID: "taken", Kind: "backup", State: messages.RunRunning,
		Coordinator: "other-host pid 2", Heartbeat: time.Now(), Generation: 1})
	select {
	case <-runCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the run went on after its record was taken over")
	}
	var ce *ClaimError
	if cause := context.Cause(runCtx); !errors.As(cause, &ce) || !strings.Contains(ce.Holder, "other-host pid 2") {
		t.Fatalf("run context ended with %v, want a ClaimError naming other-host pid 2", cause)
	}
	tr.finish("", errors.New("stopped"))
	if tr.owned() {
		t.Error("the tracker still claims the run")
	}
	rec, err := c.RunRecord(context.Background(), "taken")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Coordinator != "other-host pid 2" || rec.State != messages.RunRunning {
		t.Errorf("the loser overwrote the record: %+v", rec)
	}
}

// A write of the run record that landed though its answer was lost (a heartbeat cut short, a
// reply that timed out) is the coordinator's own: its next write goes on from it instead of
// taking it for another coordinator's claim, which would leave the run's outcome unrecorded.
func TestOwnWriteWithLostAnswer(t *testing.T) {
	c, kv := registry(t)
	ctx := context.Background()
	tr, _, err := c.track(ctx, messages.RunRecord{ID: "lost-answer", Kind: "backup"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A heartbeat that reached the server; the tracker never heard back.
	tr.mu.Lock()
	tr.rec.Heartbeat = time.Now().UTC()
	data, err := messages.Marshal(&tr.rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Update(ctx, "lost-answer", data, tr.rev); err != nil {
		t.Fatal(err)
	}
	tr.unsure = data
	tr.mu.Unlock()

	tr.finish("", errors.New("the run failed"))
	if !tr.owned() {
		t.Fatal("the tracker took its own heartbeat for another coordinator's claim")
	}
	rec, err := c.RunRecord(ctx, "lost-answer")
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != messages.RunFailed || rec.Error != "the run failed" {
		t.Errorf("record after finish: state %q, error %q; want the failure recorded", rec.State, rec.Error)
	}
}

// Which recorded runs a resume may take over, and what it says when it may not.
func TestResumeRecord(t *testing.T) {
	shortHeartbeat(t)
	c, kv := registry(t)
	old := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		rec     messages.RunRecord
		wantErr string // "" when the resume may proceed
	}{
		{messages.RunRecord{State: messages.RunRunning, Heartbeat: old, Staging: "/b/s"}, ""},
		{messages.RunRecord{State: messages.RunFailed, Heartbeat: old, Staging: "/b/s"}, ""},
		{messages.RunRecord{State: messages.RunRunning, Heartbeat: time.Now().Add(time.Minute), Coordinator: "live-host pid 3"}, "held by another coordinator (live-host pid 3"},
		{messages.RunRecord{State: messages.RunFailed, Heartbeat: old}, "staging area was removed"},
		{messages.RunRecord{State: messages.RunComplete, Heartbeat: old, Staging: "/b/s"}, "is complete"},
		{messages.RunRecord{State: messages.RunRunning, Heartbeat: old, Kind: "restore"}, "not a backup"},
	} {
		name := fmt.Sprintf("%s-%s-%t", tc.rec.State, tc.rec.Kind, tc.rec.Staging != "")
		t.Run(name, func(t *testing.T) {
			tc.rec.ID = strings.ReplaceAll(t.Name()[len("TestResumeRecord/"):], "/", "_")
			if tc.rec.Kind == "" {
				tc.rec.Kind = "backup"
			}
			tc.rec.Options = []byte(`{"backup_dir":"/b","workers":3}`)
			rev := putRun(t, kv, tc.rec)
			o := BackupOptions{Resume: tc.rec.ID}
			rec, gotRev, err := c.resumeRecord(context.Background(), &o)
			if tc.wantErr == "" {
				if err != nil || rec == nil || gotRev != rev || o.BackupDir != "/b" || o.Workers != 3 || o.RunID != tc.rec.ID {
					t.Fatalf("resume: %v (revision %d of %d, options %+v)", err, gotRev, rev, o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("resume: %v, want an error saying %q", err, tc.wantErr)
			}
		})
	}
}
