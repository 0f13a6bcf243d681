// Package extsort sorts more records than fit in memory: records are kept in memory up to a
// budget of bytes, then sorted and written to a run file, and the runs are merged k-way when
// read back. A backup of millions of files then costs its run count in memory, not its file
// count.
//
// A record is a key and an opaque value; records are ordered by key (byte order). Records
// with equal keys come out next to each other, in no set order: callers that must refuse
// duplicates see them as neighbours.
package extsort

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// recordOverhead is what a record costs in memory besides its key and value bytes.
const recordOverhead = 48

// maxFanIn bounds the runs merged at once (each holds an open file and a read buffer); more
// runs are merged in passes.
const maxFanIn = 128

// runBufferSize is the read and write buffer of one run file.
const runBufferSize = 32 << 10

// maxRecord bounds one record's key or value read back from a run: a run is our own file, so
// a larger length means it was damaged.
const maxRecord = 64 << 20

// Record is one key and its value.
type Record struct {
	Key   string
	Value []byte
}

// Sorter collects records and yields them sorted by key. Its zero value is not usable: call
// New.
type Sorter struct {
	dir    string
	budget int
	recs   []Record
	held   int
	runs   []string
	n      int
}

// New returns an empty Sorter that spills sorted runs of about budget bytes into files under
// dir (an existing folder; "" keeps everything in memory). Close removes the run files.
func New(dir string, budget int) *Sorter {
	return &Sorter{dir: dir, budget: max(budget, 1)}
}

// Len is the number of records added.
func (s *Sorter) Len() int { return s.n }

// Spilled reports whether some records were written to run files.
func (s *Sorter) Spilled() bool { return len(s.runs) > 0 }

// Runs is the number of run files on disk.
func (s *Sorter) Runs() int { return len(s.runs) }

// Add adds a record. The sorter keeps value: the caller must not change it afterwards.
func (s *Sorter) Add(key string, value []byte) error {
	s.recs = append(s.recs, Record{Key: key, Value: value})
	s.held += len(key) + len(value) + recordOverhead
	s.n++
	if s.dir == "" || s.held < s.budget {
		return nil
	}
	return s.spill()
}

// spill writes the records in memory to a new run file.
func (s *Sorter) spill() error {
	s.sortRecords()
	name, err := s.writeRun(&sliceSource{recs: s.recs})
	if err != nil {
		return err
	}
	s.runs = append(s.runs, name)
	clear(s.recs) // drop the keys and values: the backing array is reused
	s.recs, s.held = s.recs[:0], 0
	return nil
}

func (s *Sorter) sortRecords() {
	slices.SortStableFunc(s.recs, func(a, b Record) int { return cmp.Compare(a.Key, b.Key) })
}

// Each calls fn for every record in key order. It may be called more than once; records added
// after it are included in the next call.
func (s *Sorter) Each(fn func(key string, value []byte) error) error {
	src, closeAll, err := s.merged()
	if err != nil {
		return err
	}
	defer closeAll()
	return drain(src, func(r Record) error { return fn(r.Key, r.Value) })
}

// Close removes the run files.
func (s *Sorter) Close() error {
	var errs []error
	for _, r := range s.runs {
		if err := os.Remove(r); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove sort run: %w", err))
		}
	}
	s.runs = nil
	s.recs, s.held = nil, 0
	return errors.Join(errs...)
}

// merged returns every record in key order: the runs merged with the sorted records still in
// memory, after merging the runs in passes down to maxFanIn.
func (s *Sorter) merged() (source, func(), error) {
	s.sortRecords()
	for len(s.runs) >= maxFanIn {
		if err := s.mergePass(); err != nil {
			return nil, nil, err
		}
	}
	srcs, closeAll, err := openRuns(s.runs)
	if err != nil {
		return nil, nil, err
	}
	m, err := newMerger(append(srcs, &sliceSource{recs: s.recs}))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return m, closeAll, nil
}

// mergePass merges the first maxFanIn runs into one.
func (s *Sorter) mergePass() error {
	group := s.runs[:maxFanIn]
	srcs, closeAll, err := openRuns(group)
	if err != nil {
		return err
	}
	defer closeAll()
	m, err := newMerger(srcs)
	if err != nil {
		return err
	}
	name, err := s.writeRun(m)
	if err != nil {
		return err
	}
	for _, r := range group {
		os.Remove(r)
	}
	s.runs = append(slices.Clone(s.runs[maxFanIn:]), name)
	return nil
}

// writeRun writes what src yields, in order, to a new run file under s.dir.
func (s *Sorter) writeRun(src source) (string, error) {
	f, err := os.CreateTemp(s.dir, "wnb-sort-run-*")
	if err != nil {
		return "", fmt.Errorf("write sort run: %w", err)
	}
	bw := bufio.NewWriterSize(f, runBufferSize)
	var lenBuf [binary.MaxVarintLen64]byte
	putBytes := func(b []byte) {
		n := binary.PutUvarint(lenBuf[:], uint64(len(b)))
		bw.Write(lenBuf[:n])
		bw.Write(b)
	}
	err = drain(src, func(r Record) error {
		putBytes([]byte(r.Key))
		putBytes(r.Value)
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write sort run %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// source yields records in key order; ok is false at the end.
type source interface {
	next() (r Record, ok bool, err error)
}

func drain(src source, fn func(Record) error) error {
	for {
		r, ok, err := src.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

type sliceSource struct {
	recs []Record
	i    int
}

func (s *sliceSource) next() (Record, bool, error) {
	if s.i == len(s.recs) {
		return Record{}, false, nil
	}
	s.i++
	return s.recs[s.i-1], true, nil
}

// runSource reads a run file.
type runSource struct {
	name string
	br   *bufio.Reader
}

func (r *runSource) next() (Record, bool, error) {
	key, err := r.field()
	if errors.Is(err, io.EOF) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, err
	}
	value, err := r.field()
	if err != nil {
		return Record{}, false, err
	}
	return Record{Key: string(key), Value: value}, true, nil
}

// field reads one length-prefixed field; io.EOF only before its first byte.
func (r *runSource) field() ([]byte, error) {
	n, err := binary.ReadUvarint(r.br)
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil || n > maxRecord {
		return nil, fmt.Errorf("read sort run %s: bad record (%v)", r.name, err)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return nil, fmt.Errorf("read sort run %s: %w", r.name, err)
	}
	return buf, nil
}

// openRuns opens the run files; the returned function closes them.
func openRuns(names []string) ([]source, func(), error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	srcs := make([]source, 0, len(names)+1)
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("read sort run: %w", err)
		}
		files = append(files, f)
		srcs = append(srcs, &runSource{name: name, br: bufio.NewReaderSize(f, runBufferSize)})
	}
	return srcs, closeAll, nil
}

// merger is a k-way merge of sorted sources, by key.
type merger []mergeItem

type mergeItem struct {
	r   Record
	src source
}

func newMerger(srcs []source) (*merger, error) {
	m := make(merger, 0, len(srcs))
	for _, src := range srcs {
		r, ok, err := src.next()
		if err != nil {
			return nil, err
		}
		if ok {
			m = append(m, mergeItem{r, src})
		}
	}
	heap.Init(&m)
	return &m, nil
}

func (m *merger) next() (Record, bool, error) {
	if len(*m) == 0 {
		return Record{}, false, nil
	}
	top := (*m)[0]
	r, ok, err := top.src.next()
	switch {
	case err != nil:
		return Record{}, false, err
	case ok:
		(*m)[0].r = r
		heap.Fix(m, 0)
	default:
		heap.Pop(m)
	}
	return top.r, true, nil
}

func (m merger) Len() int           { return len(m) }
func (m merger) Less(i, j int) bool { return m[i].r.Key < m[j].r.Key }
func (m merger) Swap(i, j int)      { m[i], m[j] = m[j], m[i] }
func (m *merger) Push(x any)        { *m = append(*m, x.(mergeItem)) }
func (m *merger) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}
