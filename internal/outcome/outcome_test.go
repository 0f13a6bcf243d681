package outcome_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/outcome"
)

// partialErr stands for a package's own classified error (the coordinator's partial restore).
type partialErr struct{ failed int }

func (e *partialErr) Error() string                 { return fmt.Sprintf("%d files failed", e.failed) }
func (e *partialErr) OutcomeStatus() outcome.Status { return outcome.Partial }

type refusedErr struct{}

func (refusedErr) Error() string                 { return "refused" }
func (refusedErr) OutcomeStatus() outcome.Status { return outcome.Refused }

func TestOf(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		err    error
		status outcome.Status
		code   int
		label  string
	}{
		{"nil", nil, outcome.Complete, 0, "success"},
		{"plain", errors.New("disk full"), outcome.Failed, 1, "failure"},
		{"wrapped plain", fmt.Errorf("backup: %w", errors.New("x")), outcome.Failed, 1, "failure"},
		{"usage", outcome.Usagef("--workers must be 0 or more"), outcome.Usage, 2, "usage"},
		{"wrapped usage", fmt.Errorf("backup: %w", outcome.NewUsage(errors.New("bad"))), outcome.Usage, 2, "usage"},
		{"partial", &partialErr{3}, outcome.Partial, 3, "partial"},
		{"wrapped partial", fmt.Errorf("restore: %w", &partialErr{1}), outcome.Partial, 3, "partial"},
		{"refused", fmt.Errorf("restore: %w", refusedErr{}), outcome.Refused, 2, "refused"},
		{"canceled", context.Canceled, outcome.Interrupted, 130, "interrupted"},
		{"wrapped canceled", fmt.Errorf("export: %w", context.Canceled), outcome.Interrupted, 130, "interrupted"},
		{"deadline is a failure", context.DeadlineExceeded, outcome.Failed, 1, "failure"},
		{"after cancel", outcome.AfterCancel(cancelled, errors.New("connection closed")), outcome.Interrupted, 130, "interrupted"},
		{"after cancel keeps partial", outcome.AfterCancel(cancelled, &partialErr{2}), outcome.Partial, 3, "partial"},
		{"not cancelled stays failed", outcome.AfterCancel(context.Background(), errors.New("x")), outcome.Failed, 1, "failure"},
		{"joined usage", errors.Join(errors.New("a"), outcome.Usagef("b")), outcome.Usage, 2, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := outcome.Of(tt.err)
			want := outcome.Outcome{Status: tt.status, Code: tt.code, Label: tt.label}
			if got != want {
				t.Fatalf("Of(%v) = %+v, want %+v", tt.err, got, want)
			}
		})
	}
}

func TestForUnknownStatusIsFailed(t *testing.T) {
	if got := outcome.For("bogus"); got.Code != outcome.CodeFailure || got.Status != outcome.Failed {
		t.Fatalf("For(bogus) = %+v", got)
	}
	if got := outcome.For(outcome.DryRun); got.Code != 0 || got.Label != "dry_run" {
		t.Fatalf("For(DryRun) = %+v", got)
	}
}

func TestNilStaysNil(t *testing.T) {
	if outcome.NewUsage(nil) != nil || outcome.AfterCancel(context.Background(), nil) != nil {
		t.Fatal("a nil error became an error")
	}
	var u *outcome.UsageError
	if err := outcome.Usagef("x %w", context.Canceled); !errors.As(err, &u) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Usagef does not wrap: %v", err)
	}
}
