package workers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	failed := errors.New("connection reset")
	permanent := Permanent(errors.New("unknown model"))
	mismatch := fmt.Errorf("export x: %w", Mismatch(errors.New("this worker reads another database")))
	backoff := func(attempt int) time.Duration { return time.Duration(attempt) * time.Second }
	for _, tc := range []struct {
		name string
		in   Attempt
		want Decision
	}{
		{"success", Attempt{Number: 1, MaxDeliver: 5},
			Decision{Action: Ack, Publish: true, Final: true}},
		{"success on the last delivery", Attempt{Number: 5, MaxDeliver: 5},
			Decision{Action: Ack, Publish: true, Final: true}},
		{"success while shutting down is still acked", Attempt{Number: 1, MaxDeliver: 5, ShuttingDown: true},
			Decision{Action: Ack, Publish: true, Final: true}},
		{"success whose result is lost", Attempt{Number: 2, MaxDeliver: 5, ResultLost: true},
			Decision{Action: HandBack, Delay: 2 * time.Second}},
		{"failure retries", Attempt{Err: failed, Number: 2, MaxDeliver: 5},
			Decision{Action: Retry, Delay: 2 * time.Second, Publish: true}},
		{"failure with unlimited deliveries retries", Attempt{Err: failed, Number: 50},
			Decision{Action: Retry, Delay: 50 * time.Second, Publish: true}},
		{"failure whose non-final result is lost still retries", Attempt{Err: failed, Number: 1, MaxDeliver: 5, ResultLost: true},
			Decision{Action: Retry, Delay: time.Second, Publish: true}},
		{"failure on the last delivery is final", Attempt{Err: failed, Number: 5, MaxDeliver: 5},
			Decision{Action: Term, Publish: true, Final: true}},
		{"permanent failure is final at once", Attempt{Err: permanent, Number: 1, MaxDeliver: 5},
			Decision{Action: Term, Publish: true, Final: true}},
		{"final failure whose result is lost is handed back", Attempt{Err: permanent, Number: 1, MaxDeliver: 5, ResultLost: true},
			Decision{Action: HandBack, Delay: time.Second}},
		{"disk full is permanent", Attempt{Err: &os.PathError{Op: "write", Err: syscall.ENOSPC}, Number: 1, MaxDeliver: 5},
			Decision{Action: Term, Publish: true, Final: true}},
		{"failure while shutting down is handed back at once", Attempt{Err: context.Canceled, Number: 1, MaxDeliver: 5, ShuttingDown: true},
			Decision{Action: HandBack}},
		{"permanent failure while shutting down is handed back", Attempt{Err: permanent, Number: 5, MaxDeliver: 5, ShuttingDown: true},
			Decision{Action: HandBack}},
		{"mismatch is handed back, late, with a non-final result", Attempt{Err: mismatch, Number: 1, MaxDeliver: 5},
			Decision{Action: HandBack, Delay: MismatchDelay, Publish: true, Mismatch: true, Pause: 2 * MismatchDelay}},
		{"mismatch on the last delivery is still handed back, later", Attempt{Err: mismatch, Number: 5, MaxDeliver: 5},
			Decision{Action: HandBack, Delay: 5 * MismatchDelay, Publish: true, Mismatch: true, Pause: 2 * MismatchDelay}},
		{"a message that names no task is terminated", Attempt{Err: permanent, Number: 1, MaxDeliver: 5, Unnamed: true},
			Decision{Action: Term}},
		{"a message without metadata that names its task gets a final result", Attempt{Err: permanent, MaxDeliver: 5},
			Decision{Action: Term, Publish: true, Final: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Backoff = backoff
			got := Decide(tc.in)
			if got.Reason == "" {
				t.Error("decision without a reason")
			}
			got.Reason = ""
			if got != tc.want {
				t.Errorf("Decide(%+v)\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecideDefaultBackoff(t *testing.T) {
	got := Decide(Attempt{Err: errors.New("x"), Number: 3, MaxDeliver: 5})
	if got.Action != Retry || got.Delay != DefaultBackoff(3) {
		t.Fatalf("Decide without Backoff = %+v, want a retry after %s", got, DefaultBackoff(3))
	}
}
