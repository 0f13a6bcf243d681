package database

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/webnovel/webnovel-backup/internal/fixture"
)

// The client's share of a PostgreSQL load is reading and checking the fixture: parsing the
// JSON, decoding and validating each value. Done in the goroutine that feeds COPY it is slower
// than the server's share, so pgRowSource spreads it: one goroutine reads objects in batches,
// decoders (one per CPU, up to 4) decode batches in parallel, and Next hands the rows to COPY
// in fixture order.
const (
	batchObjects = 256     // objects per batch
	batchBytes   = 1 << 20 // or fewer, when the objects are big: bounds the memory in flight
	batchesAhead = 4       // batches read ahead of COPY, per decoder
)

// bytesAhead bounds the bytes of objects read ahead of COPY, however big they are (a variable
// for tests).
var bytesAhead int64 = 32 << 20

// rowBatch is a run of consecutive fixture objects and, once done is closed, their rows.
type rowBatch struct {
	objs []fixture.Object
	rows []decodedRow
	err  error // the first object that failed (rows holds those before it), or the read error
	done chan struct{}
	size int64 // its share of bytesAhead
}

// decodedRow is one object ready for COPY: its column values as pgx takes them, and the
// many-to-many lists the fixture gives.
type decodedRow struct {
	pk   int64
	vals []any
	m2m  [][]int64 // nil entry: the field is left out
}

// pgRowSource is a pgx.CopyFromSource over a fixture: rows in fixture order, the first bad
// object stopping the copy with a RowError. Close stops its goroutines.
type pgRowSource struct {
	p     *loadPlan
	types []string
	spool *pairSpool // many-to-many pairs, when the model has such fields
	merge bool

	batches chan *rowBatch // in fixture order, closed by the reader when it stops
	readErr error          // why the reader stopped early, set before batches is closed
	stop    chan struct{}
	ahead   *semaphore.Weighted // bytes of objects read and not yet handed to COPY
	wg      sync.WaitGroup
	once    sync.Once

	cur  *rowBatch
	i    int
	vals []any
	err  error
}

func newPGRowSource(ctx context.Context, r *fixture.Reader, p *loadPlan, types []string, merge bool) *pgRowSource {
	workers := min(runtime.GOMAXPROCS(0), 4)
	s := &pgRowSource{
		p: p, types: types, merge: merge,
		batches: make(chan *rowBatch, workers*batchesAhead),
		stop:    make(chan struct{}),
		ahead:   semaphore.NewWeighted(bytesAhead),
	}
	work := make(chan *rowBatch, workers*batchesAhead)
	s.wg.Add(1 + workers)
	go func() {
		defer s.wg.Done()
		defer close(work)
		defer close(s.batches)
		s.read(ctx, r, work)
	}()
	for range workers {
		go func() {
			defer s.wg.Done()
			for b := range work {
				s.decode(b)
				close(b.done)
			}
		}()
	}
	return s
}

// read cuts the fixture into batches and queues each for a decoder and, in order, for Next.
func (s *pgRowSource) read(ctx context.Context, r *fixture.Reader, work chan<- *rowBatch) {
	// Acquire's context ends with ctx or with Close.
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-actx.Done():
		}
	}()
	send := func(b *rowBatch) bool {
		if err := s.ahead.Acquire(actx, b.size); err != nil {
			s.readErr = ctx.Err()
			return false
		}
		select {
		case s.batches <- b:
		case <-s.stop:
			return false
		case <-ctx.Done():
			s.readErr = ctx.Err()
			return false
		}
		select {
		case work <- b:
			return true
		case <-s.stop:
		case <-ctx.Done():
		}
		// Next has the batch and waits for it: fail it.
		err := context.Cause(ctx)
		if err == nil {
			err = errors.New("stopped")
		}
		b.rows, b.err = nil, fmt.Errorf("load %s: %w", s.p.m.Label, err)
		close(b.done)
		return false
	}
	for {
		b := &rowBatch{done: make(chan struct{})}
		size := 0
		for len(b.objs) < batchObjects && size < batchBytes {
			obj, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.err = fmt.Errorf("load %s: %w", s.p.m.Label, err)
				break
			}
			b.objs = append(b.objs, obj)
			for _, f := range obj.Fields {
				size += len(f.Value)
			}
		}
		if len(b.objs) == 0 && b.err == nil {
			return
		}
		b.size = min(int64(size), bytesAhead) // an object bigger than the budget goes alone
		// Decided before send: from then on the batch is the decoder's.
		last := b.err != nil || len(b.objs) < batchObjects && size < batchBytes
		if !send(b) || last {
			return
		}
	}
}

// decode turns a batch's objects into rows, stopping at the first that fails.
func (s *pgRowSource) decode(b *rowBatch) {
	if len(b.objs) == 0 {
		return
	}
	n := len(s.p.cols)
	vals := make([]any, n*len(b.objs))
	b.rows = make([]decodedRow, 0, len(b.objs))
	row := s.p.newRow()
	for k := range b.objs {
		if err := s.p.decode(&b.objs[k], row); err != nil {
			b.err = err
			return
		}
		out := vals[k*n : (k+1)*n : (k+1)*n]
		for i, v := range row.vals {
			var f *loadField
			if i > 0 {
				f = &s.p.fields[i-1]
			}
			cv, err := pgLoadValue(s.types[i], f, v)
			if err != nil {
				name := s.p.m.PK.Name
				if f != nil {
					name = f.Name
				}
				b.err = &RowError{Model: s.p.m.Label, PK: strconv.FormatInt(row.pk, 10), Err: fmt.Errorf("field %q: %w", name, err)}
				return
			}
			out[i] = cv
		}
		d := decodedRow{pk: row.pk, vals: out}
		if len(s.p.m2m) > 0 {
			d.m2m = make([][]int64, len(row.m2m))
			for j, pks := range row.m2m {
				if row.seen[j] {
					d.m2m[j] = append(make([]int64, 0, len(pks)), pks...)
				}
			}
		}
		b.rows = append(b.rows, d)
	}
	b.objs = nil // the decoded rows hold all that is needed
}

// Next implements pgx.CopyFromSource.
func (s *pgRowSource) Next() bool {
	for s.cur == nil || s.i >= len(s.cur.rows) {
		if s.cur != nil && s.cur.err != nil {
			s.err = s.cur.err
			return false
		}
		if s.cur != nil {
			s.ahead.Release(s.cur.size)
			s.cur = nil
		}
		b, ok := <-s.batches
		if !ok {
			s.err = s.readErr // nil at the end of the fixture
			return false
		}
		<-b.done
		s.cur, s.i = b, 0
	}
	row := &s.cur.rows[s.i]
	s.i++
	s.vals = row.vals
	if s.spool != nil {
		for j, pks := range row.m2m {
			if pks == nil { // the field is left out
				continue
			}
			if s.merge {
				s.spool.add(spoolOwner, j, row.pk, 0)
			}
			for _, t := range pks {
				s.spool.add(spoolPair, j, row.pk, t)
			}
		}
		if s.spool.err != nil {
			s.err = fmt.Errorf("load %s: %w", s.p.m.Label, s.spool.err)
			return false
		}
	}
	return true
}

// Values implements pgx.CopyFromSource.
func (s *pgRowSource) Values() ([]any, error) { return s.vals, nil }

// Err implements pgx.CopyFromSource.
func (s *pgRowSource) Err() error { return s.err }

// Close stops the reading and decoding goroutines and waits for them.
func (s *pgRowSource) Close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}
