package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/messages"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus d seconds.
func at(d float64) time.Time { return t0.Add(time.Duration(d * float64(time.Second))) }

var testTimings = collectTimings{
	StallWarning: 30 * time.Second, StallTimeout: 60 * time.Second,
	ResyncAfter: 5 * time.Second, EndGrace: 2 * time.Second, Tick: time.Second,
}

// newTestCollector collects tasks a, b and c, published at stream sequences 1, 2 and 3.
func newTestCollector(t *testing.T, done map[string]*messages.Result) *collector {
	t.Helper()
	var tasks []*messages.Task
	for _, id := range []string{"a", "b", "c"} {
		tasks = append(tasks, &messages.Task{ID: id})
	}
	col := newCollector("run1", tasks, done, nil, testTimings, t0)
	for i, id := range []string{"a", "b", "c"} {
		col.published(id, uint64(i+1))
	}
	return col
}

func ok(id string) *messages.Result { return &messages.Result{Task: id, Final: true} }

func failed(id, cause string, final bool) *messages.Result {
	return &messages.Result{Task: id, Final: final, Error: cause, Attempt: 2, Worker: "w1"}
}

// event is one thing fed to a collector.
type event struct {
	at       float64
	result   *messages.Result
	advisory *advisory
	snapshot []taskState
	tick     bool
	queue    *queueState // with tick: the consumer's state, read when the tick asks
}

// feed runs events through a collector and returns the first error and what the last tick
// asked for.
func feed(col *collector, events []event) (due, error) {
	var d due
	for _, e := range events {
		now := at(e.at)
		var err error
		switch {
		case e.result != nil:
			err = col.result(e.result, now)
		case e.advisory != nil:
			col.advisory(*e.advisory, now)
		case e.snapshot != nil:
			err = col.snapshot(e.snapshot, now)
		case e.tick:
			if d, err = col.tick(now); err == nil && d.queue && e.queue != nil {
				_, err = col.stalled(now, *e.queue)
			}
		}
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

func TestCollectorDecides(t *testing.T) {
	noWorkers := &queueState{Known: true}
	busy := &queueState{Known: true, InFlight: 2}
	tests := []struct {
		name   string
		done   map[string]*messages.Result
		events []event
		// wantDone: every task has its result; wantTask / wantCause: a TaskError naming
		// them; wantStall: a StallError whose message holds each string.
		wantDone  bool
		wantTask  string
		wantCause string
		wantStall []string
	}{
		{name: "every result arrives", wantDone: true,
			events: []event{{at: 1, result: ok("a")}, {at: 2, result: ok("b")}, {at: 3, result: ok("c")}}},
		{name: "a resumed run's done tasks count", wantDone: true, done: map[string]*messages.Result{"a": ok("a"), "b": ok("b")},
			events: []event{{at: 1, result: ok("c")}}},
		{name: "duplicates and other runs' results change nothing",
			events: []event{{at: 1, result: ok("a")}, {at: 2, result: ok("a")}, {at: 3, result: ok("zz")}}},
		{name: "a final failure fails the run naming the task", wantTask: "b", wantCause: "disk full (attempt 2 on worker w1)",
			events: []event{{at: 1, result: failed("b", "disk full", true)}}},
		{name: "a failed attempt is not the end",
			events: []event{{at: 1, result: failed("b", "timeout", false)}, {at: 2, tick: true}}},
		{name: "terminated without a result fails after the grace", wantTask: "b", wantCause: "terminated it without a final result after 1 deliveries: decode task: wire version 2",
			events: []event{{at: 1, advisory: &advisory{kind: advTerminated, seq: 2, deliveries: 1, reason: "decode task: wire version 2"}}, {at: 2, tick: true}, {at: 3.5, tick: true}}},
		{name: "a final result within the grace wins over the advisory",
			events: []event{{at: 1, advisory: &advisory{kind: advTerminated, seq: 2}}, {at: 1.5, result: ok("b")}, {at: 4, tick: true}}},
		{name: "max deliveries names the last failed attempt", wantTask: "a", wantCause: "gave up after the last delivery: connection refused",
			events: []event{{at: 1, result: failed("a", "connection refused", false)}, {at: 2, advisory: &advisory{kind: advMaxDeliveries, seq: 1}}, {at: 5, tick: true}}},
		{name: "max deliveries without any result says the workers died", wantTask: "c", wantCause: "workers died or timed out",
			events: []event{{at: 2, advisory: &advisory{kind: advMaxDeliveries, seq: 3}}, {at: 5, tick: true}}},
		{name: "another run's advisory is ignored",
			events: []event{{at: 1, advisory: &advisory{kind: advTerminated, seq: 99}}, {at: 5, tick: true}}},
		{name: "resync: a final result read from the stream counts", wantDone: true,
			events: []event{{at: 1, result: ok("a")}, {at: 9, snapshot: []taskState{{ID: "b", Final: ok("b")}, {ID: "c", Final: ok("c")}}}}},
		{name: "resync: a message gone without a result fails the run", wantTask: "c", wantCause: "left the queue without a final result",
			events: []event{{at: 9, snapshot: []taskState{{ID: "a", InQueue: true}, {ID: "c"}}}}},
		{name: "resync: a message the consumer gave up on fails the run", wantTask: "a", wantCause: "gave up after the last delivery",
			events: []event{{at: 9, snapshot: []taskState{{ID: "a", InQueue: true, GaveUp: true}}}}},
		{name: "resync: an unreadable state concludes nothing",
			events: []event{{at: 9, snapshot: []taskState{{ID: "a", Unknown: true}, {ID: "b", InQueue: true}}}}},
		{name: "resync: a final failure read from the stream fails the run", wantTask: "b", wantCause: "bad fixture",
			events: []event{{at: 9, snapshot: []taskState{{ID: "b", Final: failed("b", "bad fixture", true)}}}}},
		{name: "no worker: stall names the tasks and 0 workers", wantStall: []string{"3 tasks pending (a, b, c)", "0 workers waiting", "start `webnovel-backup worker`"},
			events: []event{{at: 30, tick: true, queue: noWorkers}, {at: 61, tick: true, queue: noWorkers}}},
		{name: "stall names each pending task's last failure", wantStall: []string{"2 tasks pending (b, c)", "b last failed: database mismatch"},
			events: []event{{at: 1, result: ok("a")}, {at: 2, result: failed("b", "database mismatch", false)}, {at: 61.5, tick: true, queue: busy}}},
		{name: "tasks in flight without failures are progress",
			events: []event{{at: 61, tick: true, queue: busy}, {at: 100, tick: true, queue: busy}}},
		{name: "stall clock restarts with each finished task",
			events: []event{{at: 50, result: ok("a")}, {at: 100, tick: true, queue: noWorkers}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := newTestCollector(t, tt.done)
			_, err := feed(col, tt.events)
			var te *TaskError
			var se *StallError
			switch {
			case tt.wantTask != "":
				if !errors.As(err, &te) || te.Task != tt.wantTask || !strings.Contains(te.Cause, tt.wantCause) {
					t.Fatalf("err = %v, want task %s failing with %q", err, tt.wantTask, tt.wantCause)
				}
			case tt.wantStall != nil:
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want a stall", err)
				}
				for _, s := range tt.wantStall {
					if !strings.Contains(se.Error(), s) {
						t.Errorf("stall %q does not say %q", se.Error(), s)
					}
				}
			case err != nil:
				t.Fatalf("err = %v, want none", err)
			}
			if col.done() != tt.wantDone {
				t.Fatalf("done = %v, want %v (pending %v)", col.done(), tt.wantDone, col.pendingIDs())
			}
		})
	}
}

func TestCollectorAsksForResyncAndQueueOnSilence(t *testing.T) {
	tests := []struct {
		name       string
		events     []event
		wantResync bool
		wantQueue  bool
	}{
		{"news keeps resync away", []event{{at: 4, result: failed("a", "x", false)}, {at: 8, tick: true}}, false, false},
		{"silence asks for a resync", []event{{at: 6, tick: true}}, true, false},
		{"a resync is not repeated at once", []event{{at: 6, snapshot: []taskState{}}, {at: 8, tick: true}}, false, false},
		{"long silence asks for the queue's state", []event{{at: 31, tick: true}}, true, true},
		{"resyncs back off while they find nothing", []event{{at: 6, snapshot: []taskState{}}, {at: 12, tick: true}}, false, false},
		{"a backed-off resync comes", []event{{at: 6, snapshot: []taskState{}}, {at: 16.5, tick: true}}, true, false},
		{"news resets the back-off", []event{{at: 6, snapshot: []taskState{}}, {at: 7, result: failed("a", "x", false)}, {at: 12.5, tick: true}}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := newTestCollector(t, nil)
			d, err := feed(col, tt.events)
			if err != nil {
				t.Fatal(err)
			}
			if d.resync != tt.wantResync || d.queue != tt.wantQueue {
				t.Fatalf("due = %+v, want resync %v queue %v", d, tt.wantResync, tt.wantQueue)
			}
		})
	}
}

func TestCollectorStallTimeoutZeroWaitsForEver(t *testing.T) {
	tm := testTimings
	tm.StallTimeout = 0
	col := newCollector("run1", []*messages.Task{{ID: "a"}}, nil, nil, tm, t0)
	col.published("a", 1)
	if _, err := col.stalled(at(86400), queueState{Known: true}); err != nil {
		t.Fatalf("stall timeout 0 failed the run: %v", err)
	}
}

func TestStallErrorNamesFirstTasksAndCount(t *testing.T) {
	e := &StallError{Run: "r", For: time.Minute, Pending: []string{"t1", "t2", "t3", "t4", "t5", "t6", "t7"}, QueueKnown: true, Waiting: 2}
	msg := e.Error()
	for _, s := range []string{"7 tasks pending (t1, t2, t3, t4, t5, ...)", "2 workers waiting for tasks"} {
		if !strings.Contains(msg, s) {
			t.Errorf("%q does not say %q", msg, s)
		}
	}
	if strings.Contains(msg, "t6") || strings.Contains(msg, "start `webnovel-backup worker`") {
		t.Errorf("%q names too much", msg)
	}
}

func TestCollectorReportsProgress(t *testing.T) {
	var got []string
	col := newCollector("run1", []*messages.Task{{ID: "a"}, {ID: "b"}}, nil, func(r *messages.Result) { got = append(got, r.Task) }, testTimings, t0)
	for _, r := range []*messages.Result{ok("b"), ok("b"), failed("a", "x", false), ok("a")} {
		if err := col.result(r, t0); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(got, ",") != "b,a" || !col.done() {
		t.Fatalf("progress %v, done %v", got, col.done())
	}
}

// A message still in the work queue was given up on when it is below the ack floor, or when
// it was delivered and nothing awaits an ack; a message delivered while others are in flight
// may still be one of them (nak'd with a delay, or awaiting its ack wait).
func TestConsumerStateGaveUp(t *testing.T) {
	tests := []struct {
		name string
		cs   consumerState
		seq  uint64
		want bool
	}{
		{"below the ack floor", consumerState{ackFloor: 7, delivered: 9, ackPending: 2}, 5, true},
		{"delivered, nothing pending", consumerState{ackFloor: 0, delivered: 9}, 5, true},
		{"delivered, others pending", consumerState{ackFloor: 0, delivered: 9, ackPending: 1}, 5, false},
		{"not delivered yet", consumerState{ackFloor: 0, delivered: 4}, 5, false},
	}
	for _, tt := range tests {
		if got := tt.cs.gaveUp(tt.seq); got != tt.want {
			t.Errorf("%s: gaveUp = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The event queue between subscription callbacks and the collecting loop never blocks a
// callback and never drops an event.
func TestEventQueueKeepsEverything(t *testing.T) {
	q := newEventQueue[int]()
	const n = 10000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			q.push(i)
		}
	}()
	var got []int
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case <-q.ready:
			got = append(got, q.drain()...)
		case <-deadline:
			t.Fatalf("got %d of %d events", len(got), n)
		}
	}
	<-done
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d is %d", i, v)
		}
	}
}
