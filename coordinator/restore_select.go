package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/internal/subset"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/storage"
)

// How a selective restore treats a row the target holds with other values.
const (
	ConflictRefuse  = "refuse"
	ConflictKeep    = "keep"
	ConflictReplace = "replace"
)

// bookModel and bookSlug are what --book names: a book by pk or slug.
const (
	bookModel = "books.book"
	bookSlug  = "slug"
)

// SelectOptions restore some rows of a backup, with everything that belongs to them, merged
// into the live database (--book, --select).
type SelectOptions struct {
	// Books are books by pk or slug (--book).
	Books []string
	// Rows are "app.Model=PK" (--select), any model of the description.
	Rows []string
	// OnConflict is ConflictRefuse (the default), ConflictKeep or ConflictReplace.
	OnConflict string
}

// Check refuses a malformed selection, as a usage error naming the flag.
func (s *SelectOptions) Check() error {
	switch s.OnConflict {
	case "", ConflictRefuse, ConflictKeep, ConflictReplace:
	default:
		return outcome.Usagef("--on-conflict %q: want refuse, keep or replace", s.OnConflict)
	}
	if len(s.Books) == 0 && len(s.Rows) == 0 {
		if s.OnConflict != "" {
			return outcome.Usagef("--on-conflict needs --book or --select: it applies to a restore of selected rows")
		}
		return outcome.Usagef("no --book or --select: a restore of selected rows needs at least one")
	}
	_, err := s.rowSeeds()
	return err
}

// rowSeeds parses --select.
func (s *SelectOptions) rowSeeds() ([]subset.Seed, error) {
	var out []subset.Seed
	for _, r := range s.Rows {
		label, pkText, ok := strings.Cut(r, "=")
		if !ok {
			return nil, outcome.Usagef("--select %q: want app.Model=PK (e.g. books.Chapter=12)", r)
		}
		m, ok := platform.Default.Model(label)
		if !ok {
			return nil, outcome.Usagef("--select %q: unknown model %q; known models: %s", r, label, strings.Join(platform.Default.Labels(), ", "))
		}
		pk, err := strconv.ParseInt(strings.TrimSpace(pkText), 10, 64)
		if err != nil {
			return nil, outcome.Usagef("--select %q: the primary key %q is not an integer", r, pkText)
		}
		out = append(out, subset.Seed{Flag: "--select " + r, Model: m, PK: pk})
	}
	return out, nil
}

// SubsetModel is one model of a selective restore's graph.
type SubsetModel struct {
	Label string `json:"label"`
	// Selected rows (the seeds and what belongs to them), Needed rows (referenced, missing
	// live), many-to-many Links, Relinks (foreign keys of other rows, set back where a
	// deletion set them to NULL), and Conflicts (rows live with other values).
	Selected  int `json:"selected"`
	Needed    int `json:"needed"`
	Links     int `json:"links"`
	Relinks   int `json:"relinks"`
	Conflicts int `json:"conflicts"`
}

// SubsetPlan is what a selective restore writes.
type SubsetPlan struct {
	OnConflict string              `json:"on_conflict"`
	Models     []SubsetModel       `json:"models"`
	Conflicts  []database.Conflict `json:"conflicts"`
	// FileKeys is the number of storage files the rows name.
	FileKeys int `json:"file_keys"`
	// FileConflicts are the keys of the files the storage holds with other content than the
	// backup's (settled by OnConflict, as the rows are).
	FileConflicts []string `json:"file_conflicts,omitempty"`
}

// restoreSelected is the restore of selected rows: every check, then one transaction that
// upserts the closure, then the files its rows name.
func (c *Coordinator) restoreSelected(ctx context.Context, o RestoreOptions, src *restoreSource, rep *RestoreReport, start time.Time) (*RestoreReport, error) {
	so := *o.Select
	if so.OnConflict == "" {
		so.OnConflict = ConflictRefuse
	}
	o.Select = &so
	if err := o.Select.Check(); err != nil {
		return nil, err
	}
	if o.SkipDB {
		return nil, outcome.Usagef("--skip-db: --book and --select restore rows of the database; nothing was changed")
	}
	chk, sel, err := c.checkSelected(ctx, src, o)
	defer chk.close()
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	chk.plan.Backup = o.Source
	rep.Plan = chk.plan
	if o.DryRun {
		rep.Duration = time.Since(start)
		return rep, nil
	}
	if (len(sel.plan.Conflicts) > 0 || len(sel.plan.FileConflicts) > 0) && sel.plan.OnConflict == ConflictRefuse {
		return rep, refuseConflicts(sel.plan)
	}
	if err := confirmRestore(o, chk.plan); err != nil {
		return nil, err
	}
	reportRestoreTotals(o, chk.plan)
	uctx, span := telemetry.Start(ctx, "database.upsert", attribute.Int("wnb.models", len(sel.plan.Models)))
	loaded, err := chk.db.Upsert(uctx, sel.upsertModels())
	telemetry.End(span, err)
	if err != nil {
		return nil, fmt.Errorf("restore: database unchanged: %w", err)
	}
	rep.Loaded = loaded
	if o.Progress != nil {
		for _, m := range loaded {
			o.Progress.Add(progress.Rows, m.Rows)
		}
	}
	c.log.Info("selected rows restored", "run", o.RunID, "models", len(loaded))
	if !o.SkipFiles && len(chk.tasks) > 0 {
		if err := c.restoreFiles(ctx, o, chk.tasks, rep); err != nil {
			return rep, fmt.Errorf("restore: files: %w", err)
		}
	}
	return finished(rep, start)
}

// refuseConflicts is --on-conflict refuse's answer: the conflicts, rows then files, and what
// to do.
func refuseConflicts(p *SubsetPlan) error {
	var named []string
	for _, c := range p.Conflicts[:min(len(p.Conflicts), maxNamed)] {
		named = append(named, c.String())
	}
	for _, k := range p.FileConflicts[:min(len(p.FileConflicts), maxNamed)] {
		named = append(named, "file "+storage.QuoteKey(k))
	}
	list := nameSome(named, len(p.Conflicts)+len(p.FileConflicts), "\n  ")
	var what []string
	if n := len(p.Conflicts); n > 0 {
		what = append(what, fmt.Sprintf("%d selected rows exist in the target database with other values", n))
	}
	if n := len(p.FileConflicts); n > 0 {
		what = append(what, fmt.Sprintf("the storage holds %d of the files they name with other content", n))
	}
	return outcome.Errorf(outcome.Refused, "restore refused: %s:\n  %s\nnothing was changed; --on-conflict keep leaves them as they are, --on-conflict replace writes the backup's",
		strings.Join(what, ", and "), list)
}

// selection is a checked selective restore: the closure, its conflicts and its fixtures.
type selection struct {
	closure   *subset.Closure
	src       *fixtureSource
	conflicts map[string]map[int64]bool
	plan      *SubsetPlan
}

// upsertModels lists what the transaction writes, in dependency order: the closure's rows
// (less the conflicting ones with --on-conflict keep) and links.
func (s *selection) upsertModels() []database.UpsertModel {
	var out []database.UpsertModel
	for _, r := range s.closure.Models() {
		rows, skip := r, s.conflicts[r.Model.Label]
		if s.plan.OnConflict != ConflictKeep {
			skip = nil
		}
		links, relinks := map[string][][2]int64{}, map[string][][2]int64{}
		for field, set := range r.Links {
			for l := range set {
				if !skip[l.Owner] { // a kept row keeps its live links too
					links[field] = append(links[field], [2]int64{l.Owner, l.Target})
				}
			}
			slices.SortFunc(links[field], comparePairs)
		}
		for field, ls := range r.Relinks {
			for _, l := range ls {
				relinks[field] = append(relinks[field], [2]int64{l.Owner, l.Target})
			}
		}
		out = append(out, database.UpsertModel{
			Model: r.Model, Open: s.src.opener(r.Model), Links: links, Relinks: relinks,
			Keep: func(pk int64) bool { return rows.Has(pk) && !skip[pk] },
		})
	}
	return out
}

// files are the storage keys the written rows name: with --on-conflict keep, a conflicting
// row is not written, and the files it alone names keep their live content.
func (s *selection) files() []string {
	if s.plan.OnConflict != ConflictKeep {
		return s.closure.Files(nil)
	}
	return s.closure.Files(func(label string, pk int64) bool { return s.conflicts[label][pk] })
}

// fixtureSource reads a backup folder's fixtures for the closure.
type fixtureSource struct {
	dir    string
	models map[string]bool
}

func (f *fixtureSource) opener(m platform.Model) func() (io.ReadCloser, error) {
	p := filepath.Join(f.dir, m.FixtureName())
	return func() (io.ReadCloser, error) { return storage.OpenRegular(p) }
}

// Each streams the model's objects; a model the backup does not hold has none.
func (f *fixtureSource) Each(ctx context.Context, m platform.Model, fn func(obj *fixture.Object) error) error {
	if !f.models[m.Label] {
		return nil
	}
	rc, err := f.opener(m)()
	if err != nil {
		return err
	}
	defer rc.Close()
	r := fixture.NewReader(rc)
	for i := 0; ; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		obj, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", m.FixtureName(), err)
		}
		if !strings.EqualFold(obj.Model, m.Label) {
			return fmt.Errorf("%s: object %d is a %s, not a %s", m.FixtureName(), i, obj.Model, m.Label)
		}
		if err := fn(&obj); err != nil {
			return err
		}
	}
}

// seeds resolves --book (a pk, or a slug looked up in the backup) and --select.
func (o *SelectOptions) seeds(ctx context.Context, src *fixtureSource) ([]subset.Seed, error) {
	out, err := o.rowSeeds()
	if err != nil {
		return nil, err
	}
	book, ok := platform.Default.Model(bookModel)
	if !ok && len(o.Books) > 0 {
		return nil, outcome.Usagef("--book: the model description has no %s", bookModel)
	}
	for _, b := range o.Books {
		if pk, err := strconv.ParseInt(b, 10, 64); err == nil {
			out = append(out, subset.Seed{Flag: "--book " + b, Model: book, PK: pk})
			continue
		}
		pk, found, err := subset.FindPK(ctx, src, book, bookSlug, b)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, outcome.Usagef("--book %s: the backup holds no book with that id or slug", b)
		}
		out = append(out, subset.Seed{Flag: "--book " + b, Model: book, PK: pk})
	}
	return out, nil
}

// errNoSelectedFixtures is a selective restore of a backup without database fixtures.
var errNoSelectedFixtures = errors.New("--book/--select: the backup holds no database fixtures (a files-only backup?): nothing to restore; nothing was changed")

// comparePairs orders link pairs by owner, then target (the order Django added them in is
// not known; this one is stable).
func comparePairs(a, b [2]int64) int {
	if a[0] != b[0] {
		return cmpInt(a[0], b[0])
	}
	return cmpInt(a[1], b[1])
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
