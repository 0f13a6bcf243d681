package workers

import (
	"errors"
	"time"
)

// Action is what a worker does with a task message once an attempt is over.
type Action int

const (
	// Ack: the task is done and its final result is published.
	Ack Action = iota + 1
	// Retry: the attempt failed and a non-final result says so; the message comes back after
	// a delay for another attempt.
	Retry
	// Term: the task failed for good and its final failure result is published (or the
	// message names no task a result could be addressed to); it is never delivered again.
	Term
	// HandBack: the attempt is given up without counting as a failure (shutting down, a
	// worker configured for another platform, a final result that could not be published);
	// the message comes back, after Delay, for this or another worker.
	HandBack
)

// String names the action in logs and tests.
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case Term:
		return "term"
	case HandBack:
		return "hand back"
	}
	return "unknown"
}

// MismatchDelay is how long a task handed back by a worker configured for another database
// or storage waits before its next delivery (times the delivery count), and half of how long
// that worker then pauses before fetching again: long enough for a correctly configured
// worker to take the task first.
const MismatchDelay = 5 * time.Second

// Attempt is what Decide knows of one delivery of a task.
type Attempt struct {
	// Err is the attempt's error, nil when it succeeded.
	Err error
	// Number is the delivery count, 1 for the first (0 when unknown).
	Number int
	// MaxDeliver is the consumer's limit on deliveries (0 or less: none).
	MaxDeliver int
	// ShuttingDown is true when the worker stopped the attempt because it is stopping.
	ShuttingDown bool
	// Unnamed is true when the message names no task (no valid run and id): no result can
	// be addressed for it.
	Unnamed bool
	// ResultLost is true when the result Decide asked for could not be published.
	ResultLost bool
	// Backoff gives the delay before a retry (default DefaultBackoff).
	Backoff func(attempt int) time.Duration
}

// Decision is what to do with a delivery: publish a result (final or not), then Action.
type Decision struct {
	Action Action
	// Delay is how long a Retry or HandBack waits before redelivery (0: at once).
	Delay time.Duration
	// Publish says a result is to be published before the action; Final, that it is the
	// task's last.
	Publish, Final bool
	// Mismatch marks the published result as a hand back by a misconfigured worker.
	Mismatch bool
	// Pause is how long this worker waits before fetching its next task.
	Pause time.Duration
	// Reason says why, for the log (after "handing task back" for a HandBack).
	Reason string
}

// Decide is the one place that maps the outcome of a delivery to its settlement. It is pure:
// every delivery a worker fetches, decodable or not, is settled by what it returns.
func Decide(a Attempt) Decision {
	backoff := a.Backoff
	if backoff == nil {
		backoff = DefaultBackoff
	}
	retryDelay := backoff(max(a.Number, 1))
	switch {
	case a.Unnamed:
		return Decision{Action: Term, Reason: "the message names no task"}
	case a.Err != nil && a.ShuttingDown:
		return Decision{Action: HandBack, Reason: "on shutdown"}
	case a.Err != nil && IsMismatch(a.Err):
		// Each hand back is a delivery: waits that grow per delivery (5 s, 10 s, 15 s, …) give
		// busy, correctly configured workers longer to take the task before MaxDeliver ends it.
		return Decision{Action: HandBack, Delay: MismatchDelay * time.Duration(max(a.Number, 1)), Publish: true, Mismatch: true,
			Pause: 2 * MismatchDelay, Reason: "to a worker configured for its platform"}
	}
	final := a.Err == nil || IsPermanent(a.Err) || (a.MaxDeliver > 0 && a.Number >= a.MaxDeliver)
	switch {
	case !final:
		// A lost non-final result costs nothing: the next attempt publishes again.
		return Decision{Action: Retry, Delay: retryDelay, Publish: true, Reason: "attempt failed"}
	case a.ResultLost:
		// Without its final result the coordinator would never learn the task's end: let it
		// run again rather than end it silently.
		return Decision{Action: HandBack, Delay: retryDelay, Reason: "as its final result could not be published"}
	case a.Err == nil:
		return Decision{Action: Ack, Publish: true, Final: true, Reason: "done"}
	case IsPermanent(a.Err):
		return Decision{Action: Term, Publish: true, Final: true, Reason: "permanent failure"}
	default:
		return Decision{Action: Term, Publish: true, Final: true, Reason: "out of deliveries"}
	}
}

type mismatchError struct{ err error }

func (e mismatchError) Error() string { return e.err.Error() }
func (e mismatchError) Unwrap() error { return e.err }

// Mismatch marks an error of a worker configured for another database or storage than the
// task's: the task is handed back for another worker instead of failing.
func Mismatch(err error) error {
	if err == nil {
		return nil
	}
	return mismatchError{err}
}

// IsMismatch reports whether err is (or wraps) a Mismatch.
func IsMismatch(err error) bool {
	var m mismatchError
	return errors.As(err, &m)
}
