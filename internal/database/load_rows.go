package database

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
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
var bytesAhead int64 = 16 << 20

// rowBatch is a run of consecutive fixture objects and, once done is closed, their rows
// encoded as binary COPY tuples.
type rowBatch struct {
	objs    []fixture.Object
	fields  []fixture.FieldValue // the objs' Fields
	retired [][]byte             // the Reader's buffers left while reading objs
	enc     []byte               // the rows' tuples, ready for COPY
	rows    []batchRow           // one per encoded tuple
	err     error                // the first object that failed (rows holds those before it), or the read error
	done    chan struct{}
	size    int64 // its share of bytesAhead
}

// batchRow is what stays of a row once encoded: its pk and the many-to-many lists the
// fixture gives (nil entry: the field is left out; nil m2m: the model has none).
type batchRow struct {
	pk  int64
	m2m [][]int64
}

// pgRowSource is an io.Reader of a binary COPY stream over a fixture: rows in fixture
// order, the first bad object stopping the copy with a RowError (also kept in err). Decoders
// encode the tuples, so the goroutine that feeds COPY only hands bytes on. Close stops its
// goroutines.
type pgRowSource struct {
	p     *loadPlan
	cols  pgColumns
	spool *pairSpool // many-to-many pairs, when the model has such fields
	merge bool

	batches chan *rowBatch // in fixture order, closed by the reader when it stops
	readErr error          // why the reader stopped early, set before batches is closed
	stop    chan struct{}
	ahead   *semaphore.Weighted // bytes of objects read and not yet handed to COPY
	budget  int64               // ahead's size
	free    chan []byte         // tuple buffers COPY is done with, for the decoders to reuse
	decoded chan *rowBatch      // batches decoded, their objects' slices for the reader to reuse
	inputs  chan []byte         // the Reader's buffers no object in flight points into
	wg      sync.WaitGroup
	once    sync.Once

	cur     *rowBatch
	pending []byte // what Read hands out next
	started bool   // the header is out
	rows    int64
	maxPK   int64 // the largest pk of the rows handed out (when rows > 0)
	err     error
}

// newPGRowSource starts reading and decoding; budget bounds the bytes read ahead (0:
// bytesAhead).
func newPGRowSource(ctx context.Context, r *fixture.Reader, p *loadPlan, cols pgColumns, merge bool, budget int64) *pgRowSource {
	workers := min(runtime.GOMAXPROCS(0), 4)
	if budget <= 0 || budget > bytesAhead {
		budget = bytesAhead
	}
	s := &pgRowSource{
		p: p, cols: cols, merge: merge, budget: budget,
		batches: make(chan *rowBatch, workers*batchesAhead),
		stop:    make(chan struct{}),
		ahead:   semaphore.NewWeighted(budget),
		free:    make(chan []byte, workers*batchesAhead),
		decoded: make(chan *rowBatch, workers*batchesAhead),
		inputs:  make(chan []byte, 2*workers*batchesAhead),
	}
	r.RecycleBuffers(s.inputBuffer)
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
			// A type map caches encode plans and is not safe for concurrent use.
			enc := &tupleEncoder{types: pgtype.NewMap(), oids: cols.oids}
			for b := range work {
				s.decode(b, enc)
				objs, fields := b.objs[:0], b.fields[:0]
				b.objs, b.fields = nil, nil
				close(b.done)
				// The tuples hold what is needed of the objects (errors copy what they
				// name): their slices may be filled again. Their pointers keep at most
				// a few batches' input alive.
				select {
				case s.decoded <- &rowBatch{objs: objs, fields: fields}:
				default:
				}
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
		b := s.newBatch()
		size := 0
		for len(b.objs) < batchObjects && size < batchBytes {
			obj, fields, err := r.NextFields(b.fields)
			b.fields = fields
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
		b.retired = r.Retired(nil)
		b.size = min(int64(size), s.budget) // an object bigger than the budget goes alone
		// Decided before send: from then on the batch is the decoder's.
		last := b.err != nil || len(b.objs) < batchObjects && size < batchBytes
		if !send(b) || last {
			return
		}
	}
}

// inputBuffer gives the Reader a buffer of its earlier ones, when one is free and big enough
// (see nextBatch): a new one is cleared by the allocator.
func (s *pgRowSource) inputBuffer(size int) []byte {
	select {
	case buf := <-s.inputs:
		if cap(buf) >= size {
			return buf[:cap(buf)]
		}
	default:
	}
	return nil
}

// newBatch returns an empty batch, with the slices of one decoded already when there is one.
func (s *pgRowSource) newBatch() *rowBatch {
	b := &rowBatch{done: make(chan struct{})}
	select {
	case old := <-s.decoded:
		b.objs, b.fields = old.objs, old.fields
	default:
		b.objs = make([]fixture.Object, 0, batchObjects)
		b.fields = make([]fixture.FieldValue, 0, batchObjects*16)
	}
	return b
}

// decode turns a batch's objects into encoded tuples, stopping at the first that fails.
func (s *pgRowSource) decode(b *rowBatch, enc *tupleEncoder) {
	if len(b.objs) == 0 {
		return
	}
	b.rows = make([]batchRow, 0, len(b.objs))
	// Binary tuples are about as long as the JSON values, plus 2 bytes a row and 4 a column:
	// sized once, not grown value by value.
	b.enc = s.tupleBuffer(int(b.size) + len(b.objs)*(2+8*len(s.p.cols)))
	row := s.p.newRow()
	for k := range b.objs {
		start := len(b.enc)
		if out, ok := s.encodeFast(&b.objs[k], row, b.enc); ok {
			b.enc = out
			b.rows = append(b.rows, s.batchRow(row))
			continue
		}
		b.enc = b.enc[:start]
		if err := s.p.decode(&b.objs[k], row); err != nil {
			b.err = err
			return
		}
		b.enc = binary.BigEndian.AppendUint16(b.enc, uint16(len(row.vals)))
		var err error
		for i, v := range row.vals {
			var f *loadField
			if i > 0 {
				f = &s.p.fields[i-1]
			}
			b.enc, err = enc.column(b.enc, i, s.cols.types[i], f, v)
			if err != nil {
				name := s.p.m.PK.Name
				if f != nil {
					name = f.Name
				}
				b.enc = b.enc[:start]
				b.err = &RowError{Model: s.p.m.Label, PK: strconv.FormatInt(row.pk, 10), Err: fmt.Errorf("field %q: %w", name, err)}
				return
			}
		}
		b.rows = append(b.rows, s.batchRow(row))
	}
}

// tupleBuffer returns an empty buffer of at least size bytes, one COPY is done with when
// there is one: a new buffer is cleared by the allocator, a twentieth of a load's CPU.
func (s *pgRowSource) tupleBuffer(size int) []byte {
	select {
	case buf := <-s.free:
		if cap(buf) >= size {
			return buf[:0]
		}
	default:
	}
	return make([]byte, 0, size)
}

// batchRow keeps what the COPY's reader needs of an encoded row: its pk and its many-to-many
// lists (copied: row is reused).
func (s *pgRowSource) batchRow(row *loadRow) batchRow {
	d := batchRow{pk: row.pk}
	if len(s.p.m2m) > 0 {
		d.m2m = make([][]int64, len(row.m2m))
		for j, pks := range row.m2m {
			if row.seen[j] {
				d.m2m[j] = append(make([]int64, 0, len(pks)), pks...)
			}
		}
	}
	return d
}

// copyHeader starts a binary COPY stream: the signature, flags and header extension length.
var copyHeader = []byte("PGCOPY\n\377\r\n\000\x00\x00\x00\x00\x00\x00\x00\x00")

// tupleEncoder encodes column values in PostgreSQL's binary format, as pgx's CopyFrom does.
type tupleEncoder struct {
	types *pgtype.Map
	oids  []uint32
}

// Type OIDs the encoder writes itself (pg_type.oid; fixed since PostgreSQL 7).
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat8      = 701
	oidVarchar     = 1043
	oidUUID        = 2950
	oidDate        = 1082
	oidInterval    = 1186
	oidTimestamptz = 1184
	oidJSONB       = 3802
)

// pgEpoch is PostgreSQL's timestamp zero, 2000-01-01 UTC, in Unix microseconds.
const pgEpoch = 946684800 * 1_000_000

// column checks a decoded value for column i of dataType (f is nil for the pk) and appends
// it. The common types are written directly: going through pgx's type map costs a boxed
// conversion and a plan lookup per value, a good part of a load's CPU.
func (e *tupleEncoder) column(buf []byte, i int, dataType string, f *loadField, v any) ([]byte, error) {
	if err := pgCheckValue(dataType, f, v); err != nil {
		return buf, err
	}
	if out, ok := e.fast(buf, e.oids[i], v); ok {
		return out, nil
	}
	cv, err := pgValue(dataType, v)
	if err != nil {
		return buf, err
	}
	return e.value(buf, i, cv)
}

// fast appends v as a value of type oid when it is one of the common pairs, else reports false.
func (e *tupleEncoder) fast(buf []byte, oid uint32, v any) ([]byte, bool) {
	be := binary.BigEndian
	switch x := v.(type) {
	case nil:
		return be.AppendUint32(buf, 0xffffffff), true
	case int64:
		switch oid {
		case oidInt8:
			return be.AppendUint64(be.AppendUint32(buf, 8), uint64(x)), true
		case oidInt4: // in range: checked
			return be.AppendUint32(be.AppendUint32(buf, 4), uint32(int32(x))), true
		case oidInt2:
			return be.AppendUint16(be.AppendUint32(buf, 2), uint16(int16(x))), true
		}
	case string:
		if oid == oidText || oid == oidVarchar {
			return append(be.AppendUint32(buf, uint32(len(x))), x...), true
		}
	case bool:
		if oid == oidBool {
			b := byte(0)
			if x {
				b = 1
			}
			return append(be.AppendUint32(buf, 1), b), true
		}
	case float64:
		if oid == oidFloat8 {
			return be.AppendUint64(be.AppendUint32(buf, 8), math.Float64bits(x)), true
		}
	case time.Time:
		if oid == oidTimestamptz {
			return be.AppendUint64(be.AppendUint32(buf, 8), uint64(x.UnixMicro()-pgEpoch)), true
		}
	case []byte:
		switch oid {
		case oidJSONB:
			return append(append(be.AppendUint32(buf, uint32(len(x)+1)), 1), x...), true
		case oidJSON:
			return append(be.AppendUint32(buf, uint32(len(x))), x...), true
		}
	}
	return buf, false
}

// value appends column i's value through pgx's type map: its length (-1 for NULL), then its
// bytes.
func (e *tupleEncoder) value(buf []byte, i int, v any) ([]byte, error) {
	at := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, 0xffffffff) // -1
	out, err := e.types.Encode(e.oids[i], pgtype.BinaryFormatCode, v, buf)
	if err != nil {
		return buf[:at], err
	}
	if out == nil { // NULL
		return buf, nil
	}
	binary.BigEndian.PutUint32(out[at:], uint32(len(out)-at-4))
	return out, nil
}

// Read implements io.Reader: the COPY stream, header first, batch after batch in fixture
// order; the first bad object ends it with its error.
func (s *pgRowSource) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		if !s.started {
			s.started, s.pending = true, copyHeader
			break
		}
		if !s.nextBatch() {
			if s.err != nil {
				return 0, s.err
			}
			return 0, io.EOF
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// WriteTo implements io.WriterTo: the whole COPY stream, batch by batch, without the copy
// through a buffer that Read costs.
func (s *pgRowSource) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if len(s.pending) == 0 {
			if !s.started {
				s.started, s.pending = true, copyHeader
			} else if !s.nextBatch() {
				return n, s.err
			}
		}
		k, err := w.Write(s.pending)
		n += int64(k)
		s.pending = s.pending[k:]
		if err != nil {
			return n, err
		}
	}
}

// nextBatch moves on to the next decoded batch, spooling its many-to-many pairs.
func (s *pgRowSource) nextBatch() bool {
	if s.cur != nil {
		if s.cur.err != nil {
			s.err = s.cur.err
			return false
		}
		s.ahead.Release(s.cur.size)
		// Its tuples are written out (Read copied them; a pipe's Write returns once they are
		// read): the buffer may be filled again.
		select {
		case s.free <- s.cur.enc:
		default:
		}
		// Batches are done in order up to this one: no object left points into the input
		// buffers the Reader left while reading it.
		for _, buf := range s.cur.retired {
			select {
			case s.inputs <- buf:
			default:
			}
		}
		s.cur = nil
	}
	b, ok := <-s.batches
	if !ok {
		s.err = s.readErr // nil at the end of the fixture
		return false
	}
	<-b.done
	s.cur, s.pending = b, b.enc
	for _, r := range b.rows {
		if s.rows == 0 || r.pk > s.maxPK {
			s.maxPK = r.pk
		}
		s.rows++
	}
	if s.spool != nil {
		s.spoolPairs(b.rows)
		if s.spool.err != nil {
			s.err = fmt.Errorf("load %s: %w", s.p.m.Label, s.spool.err)
			return false
		}
	}
	if len(b.enc) == 0 && b.err != nil {
		s.err = b.err
		return false
	}
	return true
}

// spoolPairs writes the rows' many-to-many pairs (and, for a merge, the owners that give the
// field) to the spool.
func (s *pgRowSource) spoolPairs(rows []batchRow) {
	for _, row := range rows {
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
	}
}

// Close stops the reading and decoding goroutines and waits for them.
func (s *pgRowSource) Close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}
