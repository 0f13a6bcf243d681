// Package outcome decides, in one place, what an error means for the person or the program
// that ran a command: the status a report shows, the process's exit code and the label the
// run metric counts it under. The text output, the --json reports and telemetry all ask Of,
// so they cannot disagree.
package outcome

import (
	"context"
	"errors"
	"fmt"
)

// Status is a command's outcome as reports show it.
type Status string

// The statuses, from best to worst.
const (
	// Complete: everything asked for was done.
	Complete Status = "complete"
	// DryRun: every check passed and, as asked, nothing was changed.
	DryRun Status = "dry-run"
	// Partial: the command did most of its work; some items failed (a restore's files).
	Partial Status = "partial"
	// Refused: the operator declined the confirmation; nothing was changed.
	Refused Status = "refused"
	// Usage: the command line or the environment cannot work as given; nothing was done.
	Usage Status = "usage"
	// Interrupted: the command was cancelled (Ctrl-C, SIGTERM) before it finished.
	Interrupted Status = "interrupted"
	// Failed: anything else that went wrong.
	Failed Status = "failed"
)

// Exit codes.
const (
	CodeOK          = 0
	CodeFailure     = 1
	CodeUsage       = 2
	CodePartial     = 3
	CodeInterrupted = 130 // what a shell reports for a command ended by SIGINT
)

// Outcome is what an error means: the report's status, the exit code and the metric label.
type Outcome struct {
	Status Status
	Code   int
	// Label is the outcome label of the wnb_runs_total metric.
	Label string
}

// The outcomes, one per status. The labels keep the metric's established values.
var outcomes = map[Status]Outcome{
	Complete:    {Complete, CodeOK, "success"},
	DryRun:      {DryRun, CodeOK, "dry_run"},
	Partial:     {Partial, CodePartial, "partial"},
	Refused:     {Refused, CodeUsage, "refused"},
	Usage:       {Usage, CodeUsage, "usage"},
	Interrupted: {Interrupted, CodeInterrupted, "interrupted"},
	Failed:      {Failed, CodeFailure, "failure"},
}

// For is the outcome of a status; an unknown status is Failed.
func For(s Status) Outcome {
	if o, ok := outcomes[s]; ok {
		return o
	}
	return outcomes[Failed]
}

// Classified is an error that knows its own status: a partial restore, a refusal. Packages
// that own such errors implement it; Of finds it anywhere in the error's chain.
type Classified interface {
	error
	OutcomeStatus() Status
}

// Of maps err to its outcome. nil is Complete. Otherwise the first rule that matches wins:
// an error in the chain that classifies itself (a usage error, a partial restore, a refusal),
// then cancellation, then Failed. A cancelled context outranks nothing the chain says about
// itself: an interrupted restore that had already failed some files is still partial.
func Of(err error) Outcome {
	if err == nil {
		return outcomes[Complete]
	}
	var c Classified
	if errors.As(err, &c) {
		return For(c.OutcomeStatus())
	}
	if errors.Is(err, context.Canceled) {
		return outcomes[Interrupted]
	}
	return outcomes[Failed]
}

// UsageError is a command line or a setting that cannot work as given: exit 2.
type UsageError struct{ Err error }

// Error is the cause's message.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *UsageError) Unwrap() error { return e.Err }

// OutcomeStatus classifies the error as Usage.
func (e *UsageError) OutcomeStatus() Status { return Usage }

// NewUsage marks err as a usage error; nil stays nil.
func NewUsage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// Usagef is a usage error formatted like fmt.Errorf (so %w wraps).
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// InterruptedError marks an error that ended a command whose context was cancelled, for
// errors that do not wrap context.Canceled themselves (a driver's "connection closed").
type InterruptedError struct{ Err error }

// Error is the cause's message.
func (e *InterruptedError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *InterruptedError) Unwrap() error { return e.Err }

// OutcomeStatus classifies the error as Interrupted, unless its cause says otherwise (a
// partial restore or a usage error stays what it is).
func (e *InterruptedError) OutcomeStatus() Status {
	var c Classified
	if errors.As(e.Err, &c) {
		return c.OutcomeStatus()
	}
	return Interrupted
}

// AfterCancel is err as the outcome of a command whose context ctx was cancelled (ctx.Err()
// is not nil): the command was interrupted, whatever error the interruption surfaced as.
func AfterCancel(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	return &InterruptedError{Err: err}
}

// statusError is an error marked with a status by its owner.
type statusError struct {
	status Status
	err    error
}

func (e *statusError) Error() string         { return e.err.Error() }
func (e *statusError) Unwrap() error         { return e.err }
func (e *statusError) OutcomeStatus() Status { return e.status }

// Errorf is an error of the given status, formatted like fmt.Errorf: for a package's
// sentinel errors (a refused restore), which stay comparable with errors.Is.
func Errorf(s Status, format string, args ...any) error {
	return &statusError{status: s, err: fmt.Errorf(format, args...)}
}
