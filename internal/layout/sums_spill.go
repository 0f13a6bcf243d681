package layout

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// A spilling SumsWriter keeps at most about budget bytes of entries in memory: when they reach
// it they are sorted and written to a run file under dir, and WriteTo merges the runs k-way.
// A backup of millions of files then costs the coordinator its run count in memory, not its
// file count.

// entryOverhead is what an entry costs in memory besides its path's bytes: the string header
// and the binary sum.
const entryOverhead = 16 + 32

// maxFanIn bounds the runs merged at once (each holds an open file and a read buffer); more
// runs are merged in passes.
const maxFanIn = 128

// runBufferSize is the read buffer of one run file during the merge.
const runBufferSize = 32 << 10

// NewSpillingSumsWriter returns an empty SumsWriter that spills sorted runs of about budget
// bytes into files under dir, an existing folder. Close removes them.
func NewSpillingSumsWriter(dir string, budget int) *SumsWriter {
	return &SumsWriter{dir: dir, budget: max(budget, 1)}
}

// Close removes the run files a spilling SumsWriter wrote.
func (s *SumsWriter) Close() error {
	var errs []error
	for _, r := range s.runs {
		if err := os.Remove(r); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove checksum run: %w", err))
		}
	}
	s.runs = nil
	return errors.Join(errs...)
}

// maybeSpill writes the entries in memory to a run file once they reach the budget.
func (s *SumsWriter) maybeSpill() error {
	if s.dir == "" || s.held < s.budget {
		return nil
	}
	s.sortEntries()
	name, err := s.writeRun(&sliceSource{entries: s.entries})
	if err != nil {
		return err
	}
	s.runs = append(s.runs, name)
	clear(s.entries) // drop the paths: the backing array is reused
	s.entries, s.held = s.entries[:0], 0
	return nil
}

func (s *SumsWriter) sortEntries() {
	slices.SortFunc(s.entries, func(a, b sumEntry) int { return strings.Compare(a.path, b.path) })
}

// writeRun writes what src yields, in order, to a new run file under s.dir.
func (s *SumsWriter) writeRun(src sumSource) (string, error) {
	f, err := os.CreateTemp(s.dir, "sums-run-*")
	if err != nil {
		return "", fmt.Errorf("write checksum run: %w", err)
	}
	bw := bufio.NewWriterSize(f, runBufferSize)
	var lenBuf [binary.MaxVarintLen64]byte
	err = drain(src, func(e sumEntry) error {
		n := binary.PutUvarint(lenBuf[:], uint64(len(e.path)))
		bw.Write(lenBuf[:n])
		bw.WriteString(e.path)
		_, err := bw.Write(e.sum[:])
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write checksum run %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// mergedSource returns every entry in path order: the runs on disk merged with the sorted
// entries still in memory. The runs are first merged in passes down to maxFanIn.
func (s *SumsWriter) mergedSource() (sumSource, func(), error) {
	s.sortEntries()
	for len(s.runs) >= maxFanIn {
		if err := s.mergePass(); err != nil {
			return nil, nil, err
		}
	}
	srcs, closeAll, err := openRuns(s.runs)
	if err != nil {
		return nil, nil, err
	}
	m, err := newMerger(append(srcs, &sliceSource{entries: s.entries}))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return m, closeAll, nil
}

// mergePass merges the first maxFanIn runs into one.
func (s *SumsWriter) mergePass() error {
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

// sumSource yields entries in path order; ok is false at the end.
type sumSource interface {
	next() (e sumEntry, ok bool, err error)
}

func drain(src sumSource, fn func(sumEntry) error) error {
	for {
		e, ok, err := src.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

type sliceSource struct {
	entries []sumEntry
	i       int
}

func (s *sliceSource) next() (sumEntry, bool, error) {
	if s.i == len(s.entries) {
		return sumEntry{}, false, nil
	}
	s.i++
	return s.entries[s.i-1], true, nil
}

// runSource reads a run file.
type runSource struct {
	name string
	br   *bufio.Reader
}

func (r *runSource) next() (sumEntry, bool, error) {
	n, err := binary.ReadUvarint(r.br)
	if errors.Is(err, io.EOF) {
		return sumEntry{}, false, nil
	}
	if err != nil || n > maxSumsLine {
		return sumEntry{}, false, fmt.Errorf("read checksum run %s: bad entry (%v)", r.name, err)
	}
	buf := make([]byte, int(n)+32)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return sumEntry{}, false, fmt.Errorf("read checksum run %s: %w", r.name, err)
	}
	e := sumEntry{path: string(buf[:n])}
	copy(e.sum[:], buf[n:])
	return e, true, nil
}

// openRuns opens the run files; the returned function closes them.
func openRuns(names []string) ([]sumSource, func(), error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	srcs := make([]sumSource, 0, len(names)+1)
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("read checksum run: %w", err)
		}
		files = append(files, f)
		srcs = append(srcs, &runSource{name: name, br: bufio.NewReaderSize(f, runBufferSize)})
	}
	return srcs, closeAll, nil
}

// merger is a k-way merge of sorted sources, by path (byte order).
type merger []mergeItem

type mergeItem struct {
	e   sumEntry
	src sumSource
}

func newMerger(srcs []sumSource) (*merger, error) {
	m := make(merger, 0, len(srcs))
	for _, src := range srcs {
		e, ok, err := src.next()
		if err != nil {
			return nil, err
		}
		if ok {
			m = append(m, mergeItem{e, src})
		}
	}
	heap.Init(&m)
	return &m, nil
}

func (m *merger) next() (sumEntry, bool, error) {
	if len(*m) == 0 {
		return sumEntry{}, false, nil
	}
	top := (*m)[0]
	e, ok, err := top.src.next()
	switch {
	case err != nil:
		return sumEntry{}, false, err
	case ok:
		(*m)[0].e = e
		heap.Fix(m, 0)
	default:
		heap.Pop(m)
	}
	return top.e, true, nil
}

func (m merger) Len() int           { return len(m) }
func (m merger) Less(i, j int) bool { return m[i].e.path < m[j].e.path }
func (m merger) Swap(i, j int)      { m[i], m[j] = m[j], m[i] }
func (m *merger) Push(x any)        { *m = append(*m, x.(mergeItem)) }
func (m *merger) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}
