package database

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// existingBatch bounds the primary keys one lookup names.
const existingBatch = 500

// Existing returns which of pks the model's table holds now.
func (db *DB) Existing(ctx context.Context, m platform.Model, pks []int64) (map[int64]bool, error) {
	out := make(map[int64]bool, len(pks))
	for start := 0; start < len(pks); start += existingBatch {
		batch := pks[start:min(start+existingBatch, len(pks))]
		q := fmt.Sprintf("SELECT %s FROM %s WHERE %s IN (%s)", quote(m.PK.Column), quote(m.Table), quote(m.PK.Column),
			strings.TrimSuffix(strings.Repeat("?, ", len(batch)), ", "))
		args := make([]any, len(batch))
		for i, pk := range batch {
			args[i] = pk
		}
		if err := db.eachInt(ctx, q, args, func(pk int64) { out[pk] = true }); err != nil {
			return nil, db.lockError(fmt.Errorf("look up rows of %s: %w", m.Label, err), "look up rows of "+m.Label, 0, m.Table)
		}
	}
	return out, nil
}

// eachInt runs a query of one integer column; q uses ? placeholders, numbered for PostgreSQL.
func (db *DB) eachInt(ctx context.Context, q string, args []any, fn func(int64)) error {
	if db.pool == nil {
		rows, err := db.sql.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		return scanInts(rows, fn)
	}
	rows, err := db.pool.Query(ctx, numbered(q), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return scanInts(rows, fn)
}

// intRows is what scanInts needs of database/sql's and pgx's rows alike.
type intRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanInts calls fn with each row's one integer column.
func scanInts(rows intRows, fn func(int64)) error {
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return err
		}
		fn(v)
	}
	return rows.Err()
}

// Conflict is a row the live database holds with other values than the backup's.
type Conflict struct {
	Model string `json:"model"`
	PK    int64  `json:"pk"`
	// Fields are the fields whose values differ.
	Fields []string `json:"fields"`
}

func (c Conflict) String() string {
	return fmt.Sprintf("%s pk %d (%s)", c.Model, c.PK, strings.Join(c.Fields, ", "))
}

// Conflicts compares the objects of the fixture open returns whose pk is in pks (rows the
// live database holds) with the live rows, and returns those that differ. The live rows are
// read through the exporter, so both sides are compared as a backup writes them (a datetime's
// precision, a decimal's places); many-to-many lists compare as sets.
func (db *DB) Conflicts(ctx context.Context, m platform.Model, open func() (io.ReadCloser, error), pks map[int64]bool) ([]Conflict, error) {
	if len(pks) == 0 {
		return nil, nil
	}
	p, err := newLoadPlan(m)
	if err != nil {
		return nil, fmt.Errorf("compare %s: %w", m.Label, err)
	}
	live, err := db.liveRows(ctx, p, pks)
	if err != nil {
		return nil, err
	}
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("compare %s: open fixture: %w", m.Label, err)
	}
	defer rc.Close()
	r := fixture.NewReader(rc)
	var out []Conflict
	for {
		obj, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("compare %s: %w", m.Label, err)
		}
		if pk, err := decodeInt(obj.PK); err == nil && !pks[pk] {
			continue // not compared: not worth decoding
		}
		row := p.newRow()
		if err := p.decode(&obj, row); err != nil {
			return nil, err
		}
		if l, ok := live[row.pk]; ok && pks[row.pk] {
			if fields := p.diff(l, row); len(fields) > 0 {
				out = append(out, Conflict{Model: m.Label, PK: row.pk, Fields: fields})
			}
		}
	}
}

// liveRows reads and decodes the live rows with the given pks, exporting runs of nearby pks
// as one range each.
func (db *DB) liveRows(ctx context.Context, p *loadPlan, pks map[int64]bool) (map[int64]*loadRow, error) {
	sorted := make([]int64, 0, len(pks))
	for pk := range pks {
		sorted = append(sorted, pk)
	}
	slices.Sort(sorted)
	out := make(map[int64]*loadRow, len(pks))
	for i := 0; i < len(sorted); {
		j := i + 1
		// A range may hold other rows too: a few, not a table's worth.
		for j < len(sorted) && sorted[j]-sorted[i] <= int64(4*(j-i+1)+256) {
			j++
		}
		var buf bytes.Buffer
		f := fixture.Format{}
		buf.WriteString(f.Open())
		n, err := db.Export(ctx, "", p.m, Range{Lo: sorted[i], HasLo: true, Hi: sorted[j-1], HasHi: true}, f, &buf)
		if err != nil {
			return nil, fmt.Errorf("read the live rows of %s: %w", p.m.Label, err)
		}
		if n > 0 {
			buf.WriteString(f.Close())
			if err := p.decodeAll(&buf, pks, out); err != nil {
				return nil, fmt.Errorf("read the live rows of %s: %w", p.m.Label, err)
			}
		}
		i = j
	}
	return out, nil
}

// decodeAll decodes the objects of r whose pk is in pks into out.
func (p *loadPlan) decodeAll(r io.Reader, pks map[int64]bool, out map[int64]*loadRow) error {
	fr := fixture.NewReader(r)
	for {
		obj, err := fr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		row := p.newRow()
		if err := p.decode(&obj, row); err != nil {
			return err
		}
		if pks[row.pk] {
			out[row.pk] = row
		}
	}
}

// diff names the fields whose values differ between the live row and the backup's; a
// many-to-many field the backup's object leaves out is not compared.
func (p *loadPlan) diff(live, backup *loadRow) []string {
	var out []string
	for i, f := range p.fields {
		if !sameValue(live.vals[i+1], backup.vals[i+1]) {
			out = append(out, f.Name)
		}
	}
	for j, f := range p.m2m {
		if !backup.seen[j] {
			continue
		}
		a, b := slices.Clone(live.m2m[j]), slices.Clone(backup.m2m[j])
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(slices.Compact(a), slices.Compact(b)) {
			out = append(out, f.Name)
		}
	}
	return out
}

// sameValue compares two values in decodeValue's form.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	return a == b
}
