package coordinator

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// baseStats reads a self-indexed base's SHA256SUMS and lstats each listed copy on its own
// goroutine, while the coordinator walks the storage: the two were the plan's largest costs
// and took turns on one core. What it finds goes, in the manifest's (path) order, into a
// file of the run's spill folder, which the join then reads forward like an index: memory
// does not grow with the number of files.
type baseStats struct {
	file   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done closes
	// files and took are what the gathering read and how long it ran (set before done
	// closes); waited is how long the join then waited for it: the part not overlapped.
	files  int
	took   time.Duration
	waited time.Duration
}

// statRecord is one manifest line under files/: its path and sum, and its copy's size and
// modification time when the copy is a regular file that may be reused (ok).
type statRecord struct {
	path    string
	sum     string
	ok      bool
	size    int64
	modTime int64
}

// startBaseStats starts reading base b's manifest and copies into a file under spill; nil
// when b is not self-indexed (its index has the sizes and times).
func startBaseStats(ctx context.Context, b *baseBackup, spill string) *baseStats {
	if b == nil || b.meta.Files.Index != "" || !b.meta.Files.SelfIndexed {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &baseStats{file: filepath.Join(spill, "base-stats"), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		start := time.Now()
		defer func() { s.took = time.Since(start) }()
		if err := s.gather(ctx, b); err != nil {
			s.err = fmt.Errorf("base backup %s: %w", b.name, err)
		}
	}()
	return s
}

// logTo logs, at debug level, what the gathering read and how much of it the walk hid.
func (s *baseStats) logTo(log *slog.Logger) {
	if s != nil {
		log.Debug("base copies stat'ed", "files", s.files, "took", s.took.Round(time.Millisecond), "join_waited", s.waited.Round(time.Millisecond))
	}
}

// stop ends the gathering, if it still runs, and waits for it (before the spill folder goes).
func (s *baseStats) stop() {
	if s != nil {
		s.cancel()
		<-s.done
	}
}

// gather writes a statRecord for each files/ line of the manifest, which must be sorted
// (each path once) as this tool writes it: the join relies on that order.
func (s *baseStats) gather(ctx context.Context, b *baseBackup) error {
	rc, _, err := b.root.Open(ctx, b.name+"/"+layout.FileSums)
	if err != nil {
		return fmt.Errorf("read %s: %w", layout.FileSums, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(s.file, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 256<<10)
	// A local bucket's String is its folder (baseFits takes only a local base as
	// self-indexed). Copies are lstat'ed by path, a third of the cost of a lookup confined to
	// the root (which walks each path's folders).
	dir := filepath.Join(b.root.String(), b.name)
	changed := make(map[string]bool, len(b.meta.Files.ChangedDuringBackup))
	for _, p := range b.meta.Files.ChangedDuringBackup {
		changed[p] = true
	}
	var last string
	n := 0
	err = layout.EachSum(rc, func(p, sum string) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 1 && p <= last {
			return fmt.Errorf("%s: %q is not after %q (a manifest this tool wrote is sorted, each path once)", layout.FileSums, p, last)
		}
		last = p
		if !strings.HasPrefix(p, layout.FilesDir+"/") {
			return nil // fixtures and such: never a listed file
		}
		s.files++
		rec := statRecord{path: p, sum: sum}
		// A file that changed as the base read it has a copy whose time is not its
		// content's: never taken as unchanged.
		if !changed[p] {
			if fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(p))); err == nil && fi.Mode().IsRegular() {
				rec.ok, rec.size, rec.modTime = true, fi.Size(), fi.ModTime().UnixNano()
			}
		}
		return writeStatRecord(w, rec)
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// writeStatRecord appends rec: path length and path, sum, then (a usable copy only) size and
// modification time.
func writeStatRecord(w *bufio.Writer, rec statRecord) error {
	var b [3 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(b[:], uint64(len(rec.path)))
	w.Write(b[:n])
	w.WriteString(rec.path)
	w.WriteString(rec.sum)
	if !rec.ok {
		return w.WriteByte(0)
	}
	w.WriteByte(1)
	n = binary.PutVarint(b[:], rec.size)
	n += binary.PutVarint(b[n:], rec.modTime)
	_, err := w.Write(b[:n])
	return err
}

// statReader reads back, forward, what a baseStats wrote.
type statReader struct {
	f    *os.File
	join forwardJoin[statRecord]
	last string // the last path asked for
}

// open waits for the gathering to end and opens its file.
func (s *baseStats) open() (*statReader, error) {
	start := time.Now()
	<-s.done
	s.waited = time.Since(start)
	if s.err != nil {
		return nil, s.err
	}
	f, err := os.Open(s.file)
	if err != nil {
		return nil, fmt.Errorf("read back the base's copies: %w", err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	next := func() (statRecord, bool, error) {
		rec, err := readStatRecord(r)
		if errors.Is(err, io.EOF) {
			return statRecord{}, false, nil
		}
		if err != nil {
			return statRecord{}, false, fmt.Errorf("read back the base's copies: %w", err)
		}
		return rec, true, nil
	}
	return &statReader{f: f, join: forwardJoin[statRecord]{next: next, path: func(r *statRecord) string { return r.path }}}, nil
}

func (x *statReader) close() { x.f.Close() }

// find returns the record of path; paths must be asked for in increasing order.
func (x *statReader) find(path string) (statRecord, bool, error) {
	if x.last != "" && path <= x.last {
		return statRecord{}, false, fmt.Errorf("%q asked for after %q (the listing must be sorted)", path, x.last)
	}
	x.last = path
	return x.join.find(path)
}

// maxStatPath bounds a record's path: a manifest's path is at most PATH_MAX.
const maxStatPath = 4096

// readStatRecord reads what writeStatRecord wrote; io.EOF at a record's start only.
func readStatRecord(r *bufio.Reader) (statRecord, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return statRecord{}, err
	}
	if n > maxStatPath {
		return statRecord{}, fmt.Errorf("damaged record: a path of %d bytes", n)
	}
	buf := make([]byte, n+64+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return statRecord{}, unexpected(err)
	}
	rec := statRecord{path: string(buf[:n]), sum: string(buf[n : n+64]), ok: buf[n+64] == 1}
	if !rec.ok {
		return rec, nil
	}
	if rec.size, err = binary.ReadVarint(r); err == nil {
		rec.modTime, err = binary.ReadVarint(r)
	}
	return rec, unexpected(err)
}

// unexpected turns an end of file inside a record into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
