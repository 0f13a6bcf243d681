package retention

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// Policy says which complete backups to keep; a backup is kept if any rule keeps it, as
// restic's `forget` does.
type Policy struct {
	Last    int // the Last newest backups
	Daily   int // the newest backup of each of the Daily newest days that have backups
	Weekly  int // the same per ISO week (Monday to Sunday)
	Monthly int // the same per calendar month
}

// Empty reports whether no rule is set: such a policy would delete every backup but the
// newest, so Decide refuses it.
func (p Policy) Empty() bool { return p.Last <= 0 && p.Daily <= 0 && p.Weekly <= 0 && p.Monthly <= 0 }

// IncompleteMinAge is how old an incomplete backup must be before it may be removed: a
// younger one may still be being written (a copy into an S3 prefix, a publication). Its age
// counts from the later of its name's time and its newest file's modification.
const IncompleteMinAge = 24 * time.Hour

// DecideOptions tune Decide.
type DecideOptions struct {
	// Now is the clock incomplete backups' ages are measured against.
	Now time.Time
	// PruneIncomplete removes incomplete backups older than IncompleteMinAge; without it
	// they are only reported.
	PruneIncomplete bool
}

// Decision is what the policy does with one backup, and why.
type Decision struct {
	Backup  Backup   `json:"backup"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
}

// Decide applies the policy to backups (as List returns them, in any order) and returns one
// decision per backup, newest first. The rules apply to each scope on its own (see Scope):
// a --models or --skip-db backup neither counts towards a full backup's rules nor keeps one
// from being kept, and the newest backup of each scope (so always the newest full one) is kept.
func Decide(backups []Backup, p Policy, o DecideOptions) ([]Decision, error) {
	if p.Last < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
		return nil, errors.New("retention policy: negative counts are not allowed")
	}
	if p.Empty() {
		return nil, errors.New("retention policy: no rule set (give at least one of last, daily, weekly, monthly)")
	}
	bs := append([]Backup(nil), backups...)
	Sort(bs)
	scopes := map[Scope]*scopeRules{}
	out := make([]Decision, 0, len(bs))
	for _, b := range bs {
		d := Decision{Backup: b}
		switch b.Status {
		case StatusInProgress:
			d.Keep = true
			d.Reasons = append(d.Reasons, "run in progress (its owner still runs): never pruned; see `webnovel-backup runs`")
		case StatusUnreadable:
			d.Keep = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("unreadable (%s): never pruned until its metadata reads", b.Problem))
		case StatusIncomplete, StatusAbandoned:
			decideIncomplete(&d, o)
		default:
			sr := scopes[b.Scope]
			if sr == nil {
				sr = newScopeRules(p)
				scopes[b.Scope] = sr
			}
			sr.decide(&d)
		}
		out = append(out, d)
	}
	return out, nil
}

// decideIncomplete keeps an incomplete backup or abandoned run unless it is old enough and
// --prune-incomplete was given.
func decideIncomplete(d *Decision, o DecideOptions) {
	b := d.Backup
	what := fmt.Sprintf("incomplete (%s)", b.Problem)
	if b.Status == StatusAbandoned {
		what = fmt.Sprintf("abandoned run (%s)", b.Problem)
	}
	age := o.Now.Sub(latest(b.Time, b.ModTime))
	switch {
	case b.Status == StatusAbandoned && o.PruneIncomplete:
		// Its owner is known dead: nothing can still be writing it, whatever its age.
		d.Reasons = append(d.Reasons, what+" (--prune-incomplete)")
	case age < IncompleteMinAge:
		d.Keep = true
		d.Reasons = append(d.Reasons, what+", changed less than a day ago: it may still be being written")
	case o.PruneIncomplete:
		d.Reasons = append(d.Reasons, what+", unchanged for over a day (--prune-incomplete)")
	default:
		d.Keep = true
		d.Reasons = append(d.Reasons, what+": removed only with --prune-incomplete")
	}
}

// scopeRules is the state of the policy's rules within one scope.
type scopeRules struct {
	p      Policy
	rules  []rule
	last   []string
	newest bool // the next backup seen is the scope's newest
}

type rule struct {
	name  string
	count int
	key   func(time.Time) string
}

func newScopeRules(p Policy) *scopeRules {
	rules := []rule{
		{"last", p.Last, nil},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%04d-W%02d", y, w)
		}},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	return &scopeRules{p: p, rules: rules, last: make([]string, len(rules)), newest: true}
}

// decide applies the rules to the scope's next backup, newest first.
func (s *scopeRules) decide(d *Decision) {
	b := d.Backup
	suffix := ""
	if b.Scope != ScopeFull && b.Scope != ScopeUnknown {
		suffix = " (" + string(b.Scope) + ")"
	}
	for i := range s.rules {
		r := &s.rules[i]
		if r.count <= 0 {
			continue
		}
		if r.key == nil {
			d.Keep = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("last %d%s", s.p.Last, suffix))
			r.count--
			continue
		}
		if k := r.key(b.Time); k != s.last[i] {
			d.Keep = true
			d.Reasons = append(d.Reasons, r.name+" "+k+suffix)
			s.last[i] = k
			r.count--
		}
	}
	if s.newest {
		what := string(b.Scope)
		if b.Scope == ScopeUnknown {
			what = "complete"
		}
		d.Keep = true
		d.Reasons = append(d.Reasons, "newest "+what+" backup: never pruned")
		s.newest = false
	}
	if !d.Keep {
		d.Reasons = append(d.Reasons, "not kept by any rule"+suffix)
	}
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// PruneOptions tune Prune.
type PruneOptions struct {
	DecideOptions
	ListOptions
	// DryRun decides but deletes nothing.
	DryRun bool
	// Grace is the object store sweep's grace period (see SweepObjects): 0 keeps only what a
	// backup or run names; the command line's default is DefaultGrace.
	Grace time.Duration
}

// PruneResult is what Prune decided and did.
type PruneResult struct {
	Decisions []Decision `json:"decisions"`
	// Removed names the backups deleted (none on a dry run).
	Removed []string `json:"removed"`
	// InUse is the backups the policy does not keep that a restore, copy or verify was
	// reading: kept, for a later prune to delete.
	InUse  []string `json:"in_use,omitempty"`
	DryRun bool     `json:"dry_run"`
	// Sweep is what the object store's garbage collection did (nil: the destination has no
	// object store).
	Sweep *SweepResult `json:"sweep,omitempty"`
}

// Prune lists the destination, applies the policy and deletes what it does not keep (unless
// DryRun). It tries every deletion and returns the failures joined; what was deleted is in
// the result either way. A zero Now is the current time.
func Prune(ctx context.Context, d *Destination, p Policy, o PruneOptions) (*PruneResult, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	// A backup's scope is in its metadata: archives are read up to it (their first entries
	// in archives this tool writes now), so an archive is never pruned for a scope it lacks.
	lo := o.ListOptions
	lo.ReadArchives = true
	backups, err := d.List(ctx, lo)
	if err != nil {
		return nil, err
	}
	decisions, err := Decide(backups, p, o.DecideOptions)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{Decisions: decisions, Removed: []string{}, DryRun: o.DryRun}
	if o.DryRun {
		return res, d.sweepAfter(ctx, res, o)
	}
	var errs []error
	for _, dec := range decisions {
		if dec.Keep {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := d.Remove(ctx, dec.Backup); errors.Is(err, layout.ErrInUse) {
			res.InUse = append(res.InUse, dec.Backup.Name)
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Removed = append(res.Removed, dec.Backup.Name)
	}
	if ctx.Err() == nil {
		if err := d.sweepAfter(ctx, res, o); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("prune %s: %w", d, errors.Join(errs...))
	}
	return res, nil
}
