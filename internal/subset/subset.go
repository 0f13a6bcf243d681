// Package subset finds the rows a selective restore writes, from the model description alone:
// the selected rows; every row that belongs to them (its CASCADE foreign keys lead to a
// selected row, as Django's delete collector follows them); the many-to-many links of those
// rows, in either direction; and the rows they reference that the live database lacks (an
// author, a language, a user), with what those need in turn.
//
// The backup's fixtures are streamed, each read once per pass; only primary-key sets, link
// pairs and the file keys the rows name are kept in memory.
package subset

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// Source reads one model's objects from the backup, in file order.
type Source interface {
	Each(ctx context.Context, m platform.Model, fn func(obj *fixture.Object) error) error
}

// Live tells which of the given primary keys the target database holds.
type Live interface {
	Existing(ctx context.Context, m platform.Model, pks []int64) (map[int64]bool, error)
}

// Seed is one selected row; Flag names it as the operator gave it, for errors.
type Seed struct {
	Flag  string
	Model platform.Model
	PK    int64
}

// Link is one many-to-many pair: the owner's pk and the target's.
type Link struct{ Owner, Target int64 }

// Rows is what the closure holds of one model.
type Rows struct {
	Model platform.Model
	// Selected are the seeds and the rows that belong to them.
	Selected map[int64]bool
	// Needed are rows the closure references that the live database lacks.
	Needed map[int64]bool
	// Links are the many-to-many pairs to restore, by field name.
	Links map[string]map[Link]bool
	// Relinks are SET_NULL foreign keys of rows outside the closure that pointed at a
	// selected row in the backup (Link{row, target}), by field name: deleting the selected
	// row set them to NULL, so they are set back where they are still NULL.
	Relinks map[string][]Link
}

// Has reports whether the closure writes the row.
func (r *Rows) Has(pk int64) bool { return r.Selected[pk] || r.Needed[pk] }

// RelinkCount is the number of foreign keys the closure sets back.
func (r *Rows) RelinkCount() int {
	n := 0
	for _, l := range r.Relinks {
		n += len(l)
	}
	return n
}

// Count is the number of rows the closure writes.
func (r *Rows) Count() int { return len(r.Selected) + len(r.Needed) }

// LinkCount is the number of many-to-many pairs the closure writes.
func (r *Rows) LinkCount() int {
	n := 0
	for _, l := range r.Links {
		n += len(l)
	}
	return n
}

// Closure is the whole selection.
type Closure struct {
	desc  *platform.Description
	rows  map[string]*Rows
	live  map[string]map[int64]bool // referenced rows found live: not written
	files map[string]key            // file key → the first row naming it
	// why remembers, for a row to look up, the row that referenced it first.
	why map[key]key
}

type key struct {
	label string
	pk    int64
}

func (k key) String() string { return k.label + " pk " + strconv.FormatInt(k.pk, 10) }

// Models returns the models the closure writes rows or links of, in dependency order.
func (c *Closure) Models() []*Rows {
	var out []*Rows
	for _, m := range c.desc.Models {
		if r, ok := c.rows[m.Label]; ok && (r.Count() > 0 || r.LinkCount() > 0 || r.RelinkCount() > 0) {
			out = append(out, r)
		}
	}
	return out
}

// Of returns the closure's rows of a model (empty when it has none).
func (c *Closure) Of(label string) *Rows { return c.model(label) }

// Files returns the storage keys the closure's rows name in their file fields, sorted, less
// those named only by rows skip says are not written (nil skips none).
func (c *Closure) Files(skip func(label string, pk int64) bool) []string {
	out := make([]string, 0, len(c.files))
	for f, row := range c.files {
		if skip == nil || !skip(row.label, row.pk) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Closure) model(label string) *Rows {
	r, ok := c.rows[label]
	if !ok {
		m, _ := c.desc.Model(label)
		r = &Rows{Model: m, Selected: map[int64]bool{}, Needed: map[int64]bool{}, Links: map[string]map[Link]bool{}, Relinks: map[string][]Link{}}
		c.rows[label] = r
	}
	return r
}

func (c *Closure) addLink(label, field string, l Link) {
	r := c.model(label)
	if r.Links[field] == nil {
		r.Links[field] = map[Link]bool{}
	}
	r.Links[field][l] = true
}

// Resolve computes the closure of seeds against the backup src and the live database.
func Resolve(ctx context.Context, desc *platform.Description, src Source, live Live, seeds []Seed) (*Closure, error) {
	c := &Closure{desc: desc, rows: map[string]*Rows{}, live: map[string]map[int64]bool{}, files: map[string]key{}, why: map[key]key{}}
	for _, s := range seeds {
		c.model(s.Model.Label).Selected[s.PK] = true
	}
	if err := c.belongs(ctx, src); err != nil {
		return nil, err
	}
	pending, err := c.inboundLinks(ctx, src)
	if err != nil {
		return nil, err
	}
	for label, r := range c.rows {
		for pk := range r.Selected {
			addPending(pending, key{label, pk})
		}
	}
	if err := c.needs(ctx, src, live, pending, seeds); err != nil {
		return nil, err
	}
	return c, nil
}

// belongs adds, model by model in dependency order, the rows whose CASCADE foreign keys point
// at a selected row. A model that cascades to itself is read again until nothing is added.
func (c *Closure) belongs(ctx context.Context, src Source) error {
	for _, m := range c.desc.Models {
		for {
			var cascades []platform.Field
			for _, f := range m.Fields {
				if f.Type == platform.ForeignKey && strings.EqualFold(f.OnDelete, "CASCADE") && len(c.model(f.To).Selected) > 0 {
					cascades = append(cascades, f)
				}
			}
			if len(cascades) == 0 {
				break
			}
			self := false
			sel := c.model(m.Label).Selected
			err := src.Each(ctx, m, func(obj *fixture.Object) error {
				pk, err := objectPK(m, obj)
				if err != nil || sel[pk] {
					return err
				}
				for _, f := range cascades {
					v, ok, err := fkValue(m, obj, f)
					if err != nil {
						return err
					}
					if ok && c.model(f.To).Selected[v] {
						sel[pk] = true
						self = self || f.To == m.Label
						break
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("find the rows of %s that belong to the selection: %w", m.Label, err)
			}
			if !self {
				break
			}
		}
	}
	return nil
}

// inboundLinks finds the many-to-many pairs whose target is a selected row (another book's
// link to a selected book): they belong to the selection too. Their owners must exist; they
// are returned to be looked up. It also finds the SET_NULL foreign keys of other rows that
// point at a selected row (Relinks).
func (c *Closure) inboundLinks(ctx context.Context, src Source) (map[string]map[int64]bool, error) {
	pending := map[string]map[int64]bool{}
	for _, m := range c.desc.Models {
		var fields []platform.Field
		for _, f := range m.Fields {
			setNull := f.Type == platform.ForeignKey && strings.EqualFold(f.OnDelete, "SET_NULL")
			if (f.IsManyToMany() || setNull) && len(c.model(f.To).Selected) > 0 {
				fields = append(fields, f)
			}
		}
		if len(fields) == 0 {
			continue
		}
		err := src.Each(ctx, m, func(obj *fixture.Object) error {
			pk, err := objectPK(m, obj)
			if err != nil {
				return err
			}
			for _, f := range fields {
				if err := c.inbound(m, obj, pk, f, pending); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("find the references to the selection in %s: %w", m.Label, err)
		}
	}
	return pending, nil
}

// inbound records one row's references to selected rows through field f.
func (c *Closure) inbound(m platform.Model, obj *fixture.Object, pk int64, f platform.Field, pending map[string]map[int64]bool) error {
	target := c.model(f.To).Selected
	if !f.IsManyToMany() {
		v, ok, err := fkValue(m, obj, f)
		if err != nil || !ok || !target[v] || c.model(m.Label).Selected[pk] {
			return err
		}
		r := c.model(m.Label)
		r.Relinks[f.Name] = append(r.Relinks[f.Name], Link{pk, v})
		return nil
	}
	targets, err := m2mValues(m, obj, f)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if target[t] {
			c.addLink(m.Label, f.Name, Link{pk, t})
			if addPending(pending, key{m.Label, pk}) {
				c.why[key{m.Label, pk}] = key{f.To, t}
			}
		}
	}
	return nil
}

func addPending(p map[string]map[int64]bool, k key) bool {
	if p[k.label] == nil {
		p[k.label] = map[int64]bool{}
	}
	if p[k.label][k.pk] {
		return false
	}
	p[k.label][k.pk] = true
	return true
}

// FindPK returns the pk of m's first row in the backup whose field equals value (a book's
// slug); false when none does.
func FindPK(ctx context.Context, src Source, m platform.Model, field, value string) (int64, bool, error) {
	var (
		pk    int64
		found bool
	)
	errFound := fmt.Errorf("found")
	err := src.Each(ctx, m, func(obj *fixture.Object) error {
		raw, ok := obj.Field(field)
		var s string
		if !ok || json.Unmarshal(raw, &s) != nil || s != value {
			return nil
		}
		v, err := objectPK(m, obj)
		if err != nil {
			return err
		}
		pk, found = v, true
		return errFound
	})
	if err != nil && err != errFound {
		return 0, false, fmt.Errorf("find the %s whose %s is %q: %w", m.Label, field, value, err)
	}
	return pk, found, nil
}
