package subset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// needs reads, round by round and in reverse dependency order, every pending row: a selected
// one, or one the closure references, which is written only when the live database lacks it.
// Each row read adds what it references in turn (foreign keys, many-to-many targets), its
// links and the file keys it names. A pending row the backup does not hold is an error.
func (c *Closure) needs(ctx context.Context, src Source, live Live, pending map[string]map[int64]bool, seeds []Seed) error {
	for len(pending) > 0 {
		for i := len(c.desc.Models) - 1; i >= 0; i-- {
			m := c.desc.Models[i]
			p := pending[m.Label]
			if len(p) == 0 {
				continue
			}
			delete(pending, m.Label)
			scan, err := c.toRead(ctx, live, m, p)
			if err != nil {
				return err
			}
			if len(scan) == 0 {
				continue
			}
			if err := c.read(ctx, src, m, scan, pending); err != nil {
				return err
			}
			for pk := range scan {
				return c.missing(key{m.Label, pk}, seeds)
			}
		}
	}
	return nil
}

// toRead returns the pending rows of m to read from the backup: the selected ones, and those
// the live database lacks (which become Needed).
func (c *Closure) toRead(ctx context.Context, live Live, m platform.Model, p map[int64]bool) (map[int64]bool, error) {
	r := c.model(m.Label)
	scan := map[int64]bool{}
	var ask []int64
	for pk := range p {
		switch {
		case r.Selected[pk]:
			scan[pk] = true
		case !r.Needed[pk] && !c.live[m.Label][pk]:
			ask = append(ask, pk)
		}
	}
	if len(ask) == 0 {
		return scan, nil
	}
	have, err := live.Existing(ctx, m, ask)
	if err != nil {
		return nil, fmt.Errorf("look up %d rows of %s in the target database: %w", len(ask), m.Label, err)
	}
	if c.live[m.Label] == nil {
		c.live[m.Label] = map[int64]bool{}
	}
	for _, pk := range ask {
		if have[pk] {
			c.live[m.Label][pk] = true
			continue
		}
		r.Needed[pk] = true
		scan[pk] = true
	}
	return scan, nil
}

// read streams m's fixture, collecting what each row of scan references; rows found are
// removed from scan, so what is left is missing from the backup.
func (c *Closure) read(ctx context.Context, src Source, m platform.Model, scan map[int64]bool, pending map[string]map[int64]bool) error {
	err := src.Each(ctx, m, func(obj *fixture.Object) error {
		pk, err := objectPK(m, obj)
		if err != nil || !scan[pk] {
			return err
		}
		delete(scan, pk)
		return c.collect(m, obj, pk, pending)
	})
	if err != nil {
		return fmt.Errorf("read the selected rows of %s: %w", m.Label, err)
	}
	return nil
}

// collect records what one row of the closure references (pending when neither in the
// closure nor known live), its many-to-many links and the file keys it names.
func (c *Closure) collect(m platform.Model, obj *fixture.Object, pk int64, pending map[string]map[int64]bool) error {
	need := func(label string, v int64) {
		if _, described := c.desc.Model(label); !described {
			return // a Django model outside the description (auth.group): migrate seeds it
		}
		if c.model(label).Has(v) || c.live[label][v] {
			return
		}
		k := key{label, v}
		if addPending(pending, k) {
			c.why[k] = key{m.Label, pk}
		}
	}
	for _, f := range m.Fields {
		switch {
		case f.Type == platform.ForeignKey:
			v, ok, err := fkValue(m, obj, f)
			if err != nil {
				return err
			}
			if ok {
				need(f.To, v)
			}
		case f.IsManyToMany():
			targets, err := m2mValues(m, obj, f)
			if err != nil {
				return err
			}
			for _, t := range targets {
				c.addLink(m.Label, f.Name, Link{pk, t})
				need(f.To, t)
			}
		case f.IsFile():
			raw, ok := obj.Field(f.Name)
			var s string
			if !ok || json.Unmarshal(raw, &s) != nil || s == "" {
				continue
			}
			if _, named := c.files[s]; !named {
				c.files[s] = key{m.Label, pk}
			}
		}
	}
	return nil
}

// missing is the error for a row the closure needs that the backup lacks.
func (c *Closure) missing(k key, seeds []Seed) error {
	for _, s := range seeds {
		if s.Model.Label == k.label && s.PK == k.pk {
			return outcome.Usagef("%s: the backup holds no %s with pk %d; nothing was changed", s.Flag, k.label, k.pk)
		}
	}
	if from, ok := c.why[k]; ok {
		return fmt.Errorf("%s references %s, which neither the target database nor the backup holds", from, k)
	}
	return fmt.Errorf("%s is in neither the target database nor the backup", k)
}

// objectPK reads an object's integer primary key.
func objectPK(m platform.Model, obj *fixture.Object) (int64, error) {
	v, ok, err := intValue(obj.PK)
	if err == nil && !ok {
		err = errors.New("no primary key")
	}
	if err != nil {
		return 0, fmt.Errorf("%s object pk %s: %w", m.Label, shorten(obj.PK), err)
	}
	return v, nil
}

// fkValue reads a foreign key's target pk; ok is false for null or a missing field.
func fkValue(m platform.Model, obj *fixture.Object, f platform.Field) (int64, bool, error) {
	raw, present := obj.Field(f.Name)
	if !present {
		if raw, present = obj.Field(f.Column); !present {
			return 0, false, nil
		}
	}
	v, ok, err := intValue(raw)
	if err != nil {
		return 0, false, fmt.Errorf("%s pk %s field %s: %w", m.Label, shorten(obj.PK), f.Name, err)
	}
	return v, ok, nil
}

// m2mValues reads a many-to-many field's target pks (none when the field is left out).
func m2mValues(m platform.Model, obj *fixture.Object, f platform.Field) ([]int64, error) {
	raw, present := obj.Field(f.Name)
	if !present {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%s pk %s field %s: not a list of primary keys: %s", m.Label, shorten(obj.PK), f.Name, shorten(raw))
	}
	out := make([]int64, 0, len(items))
	for _, it := range items {
		v, ok, err := intValue(it)
		if err == nil && !ok {
			err = errors.New("null in a list of primary keys")
		}
		if err != nil {
			return nil, fmt.Errorf("%s pk %s field %s: %w", m.Label, shorten(obj.PK), f.Name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// intValue reads a JSON integer, or a string holding one (Django accepts both); false for null.
func intValue(raw json.RawMessage) (int64, bool, error) {
	text := strings.TrimSpace(string(raw))
	if text == "null" {
		return 0, false, nil
	}
	if strings.HasPrefix(text, "[") {
		return 0, false, fmt.Errorf("natural keys are not supported: %s", shorten(raw))
	}
	if strings.HasPrefix(text, `"`) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false, fmt.Errorf("not an integer: %s", shorten(raw))
		}
		text = strings.TrimSpace(s)
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("not an integer: %s", shorten(raw))
	}
	return v, true, nil
}

func shorten(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}
