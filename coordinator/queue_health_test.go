package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/queue/queuetest"
	"github.com/webnovel/webnovel-backup/messages"
)

// TestRunEndsSoonAfterTheQueueFreezes: a run whose queue stops answering mid-run (a server
// stopped, its connections kept open) fails at the stall timeout, and its end (the purge of its
// tasks, its subscriptions, its run record) waits only briefly on each call once one went
// unanswered, instead of the full limit on each.
func TestRunEndsSoonAfterTheQueueFreezes(t *testing.T) {
	url := queuetest.Server(t)
	if _, err := queue.Ensure(t.Context(), queuetest.Connect(t, url), queue.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	proxy, u := proctest.ProxyURL(t, url)
	js := queuetest.Connect(t, u.String())
	const stall = time.Second
	c := (&testQueue{js: js}).coordinator(t, stall)
	var frozen time.Time
	c.afterPublish = func() { proxy.Freeze(0); frozen = time.Now() }

	run := "run-frozen-queue"
	tr, runCtx, err := c.track(t.Context(), messages.RunRecord{ID: run}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := copyTasks(t, run, 3) // no worker: nothing takes them
	_, err = c.dispatch(runCtx, run, tasks, nil, nil)
	if err == nil {
		t.Fatal("a run on a frozen queue succeeded")
	}
	tr.finish("", err)
	// The stall timeout, a read of the queue bounded by it, then four calls at the end (the
	// purge, the subscriptions, the heartbeat, the outcome) of a second each. One call given
	// its full limit (10 s) would pass the bound alone.
	if took := time.Since(frozen); took > 9*time.Second {
		t.Errorf("the run ended %s after the queue froze; want well under 10 s", took.Round(100*time.Millisecond))
	}
	if !c.queue.silent.Load() {
		t.Error("the queue is not known silent after calls that went unanswered")
	}
}

// TestQueueHealthNote: an unanswered call marks the queue silent and shortens the next wait; any
// answer, even a refusal, marks it alive; a cancelled call says nothing.
func TestQueueHealthNote(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool
		err    error
		silent bool
	}{
		{"answered", true, nil, false},
		{"refused", true, jetstream.ErrStreamNotFound, false},
		{"timed out", false, context.DeadlineExceeded, true},
		{"nats timeout", false, nats.ErrTimeout, true},
		{"no responders", false, nats.ErrNoResponders, true},
		{"wrapped", false, errors.Join(errors.New("purge"), nats.ErrTimeout), true},
		{"cancelled, was silent", true, context.Canceled, true},
		{"cancelled, was alive", false, context.Canceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h queueHealth
			h.silent.Store(tc.before)
			if got := h.note(tc.err); !errors.Is(got, tc.err) {
				t.Errorf("note returned %v, want %v", got, tc.err)
			}
			if h.silent.Load() != tc.silent {
				t.Errorf("silent %v, want %v", h.silent.Load(), tc.silent)
			}
			want := queueCallWait
			if tc.silent {
				want = silentQueueWait
			}
			if got := h.wait(queueCallWait); got != want {
				t.Errorf("wait %s, want %s", got, want)
			}
		})
	}
}
