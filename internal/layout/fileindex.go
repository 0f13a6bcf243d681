package layout

import (
	"bufio"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/messages"
)

// FileIndexReader reads a file index (FileIndex) one entry at a time, checking that it is
// sorted by Path as written: a reader merging it with another sorted list relies on that.
type FileIndexReader struct {
	r    *messages.FileListReader
	last string
}

// NewFileIndexReader reads the index from r, gzipped (FileIndexGz) or not (FileIndex).
func NewFileIndexReader(r io.Reader) *FileIndexReader {
	return &FileIndexReader{r: messages.NewFileListReader(DecompressIndex(r))}
}

// DecompressIndex returns what r holds uncompressed: a gzip stream (FileIndexGz) is
// decompressed, its checksum checked at its end; anything else (FileIndex, whose lines start
// with "{") is read as it is.
func DecompressIndex(r io.Reader) io.Reader {
	return &sniffReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// sniffReader decides on its first Read whether its input is gzipped.
type sniffReader struct {
	br  *bufio.Reader
	in  io.Reader
	err error
}

func (s *sniffReader) Read(p []byte) (int, error) {
	if s.in == nil && s.err == nil {
		s.in = s.br
		if magic, _ := s.br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := gzip.NewReader(s.br)
			if err != nil {
				s.in, s.err = nil, fmt.Errorf("%s: %w", FileIndexGz, err)
			} else {
				s.in = zr
			}
		}
	}
	if s.err != nil {
		return 0, s.err
	}
	return s.in.Read(p)
}

// Next returns the next entry; ok is false at the end of the index.
func (x *FileIndexReader) Next() (e messages.FileEntry, ok bool, err error) {
	e, ok, err = x.r.Next()
	if err != nil {
		return e, false, fmt.Errorf("%s %w", FileIndex, err)
	}
	if !ok {
		return e, false, nil
	}
	if line := x.r.Line(); line > 1 && e.Path <= x.last {
		return e, false, fmt.Errorf("%s entry %d: %q is not after %q (the index must be sorted, each path once)", FileIndex, line, e.Path, x.last)
	}
	x.last = e.Path
	return e, true, nil
}

// ReadFileIndex calls fn for each entry of the file index read from r, in Path order,
// streaming: memory does not grow with the number of files.
func ReadFileIndex(r io.Reader, fn func(messages.FileEntry) error) error {
	x := NewFileIndexReader(r)
	for {
		e, ok, err := x.Next()
		if err != nil || !ok {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// FileIndexWriter gathers a backup's file entries in any order and writes them as its file
// index, sorted by Path, through an external sort: entries beyond the memory budget wait in
// sorted runs on disk.
type FileIndexWriter struct {
	sorted   *extsort.Sorter
	omitSums bool
}

// OmitSums makes the writer leave each entry's sum out: a backup folder's SHA256SUMS lists
// every file with its sum, in the same path order, and the sums (random hex) were most of
// the compressed index's bytes. A reader fills them back in with a SumsJoin. An object-store
// backup's index keeps them: its readers (restore, verify, prune, restore.sh) find each
// object by the index alone.
func (w *FileIndexWriter) OmitSums() { w.omitSums = true }

// NewFileIndexWriter returns an empty writer that spills runs of about budget bytes under dir
// (an existing folder; "" keeps everything in memory). Close removes them.
func NewFileIndexWriter(dir string, budget int) *FileIndexWriter {
	return &FileIndexWriter{sorted: extsort.New(dir, budget)}
}

// Add records one file. Only what the index keeps is written: Path, Key, Stored, Size,
// ModTime, ETag, SHA256 and Mode; never an encrypted file's plaintext sum (Plain), which only
// the encrypted manifest of plaintext sums holds.
func (w *FileIndexWriter) Add(e messages.FileEntry) error {
	if err := checkSumPath(e.Path); err != nil {
		return fmt.Errorf("file index: %w", err)
	}
	e.Changed, e.Reuse, e.Plain = false, "", ""
	if w.omitSums {
		e.SHA256 = ""
	}
	data, err := messages.MarshalFileEntry(e)
	if err != nil {
		return fmt.Errorf("file index: %s: %w", e.Path, err)
	}
	return w.sorted.Add(e.Path, data)
}

// WriteTo writes the index, one JSON line per file in Path order. A path added twice is an
// error (the lines before it may have been written).
func (w *FileIndexWriter) WriteTo(out io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(out, 64<<10)
	var (
		n    int64
		last string
		any  bool
	)
	err := w.sorted.Each(func(key string, value []byte) error {
		if any && key == last {
			return fmt.Errorf("file index: %q listed twice", key)
		}
		any, last = true, key
		m, err := bw.Write(value)
		n += int64(m)
		if err == nil {
			err = bw.WriteByte('\n')
			n++
		}
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	return n, err
}

// WriteGzipTo writes the index as WriteTo does, gzipped (FileIndexGz). n counts the bytes
// written to out.
func (w *FileIndexWriter) WriteGzipTo(out io.Writer) (n int64, err error) {
	cw := &countingWriter{w: out}
	zw, err := gzip.NewWriterLevel(cw, gzip.DefaultCompression)
	if err != nil {
		return 0, fmt.Errorf("file index: %w", err)
	}
	if _, err := w.WriteTo(zw); err != nil {
		return cw.n, err
	}
	if err := zw.Close(); err != nil {
		return cw.n, fmt.Errorf("file index: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Close removes the writer's run files.
func (w *FileIndexWriter) Close() error { return w.sorted.Close() }

// Each calls fn for every entry added, in Path order (a path added twice comes twice). It
// may be called before or after WriteTo.
func (w *FileIndexWriter) Each(fn func(e messages.FileEntry) error) error {
	return w.sorted.Each(func(_ string, value []byte) error {
		var e messages.FileEntry
		if err := e.UnmarshalJSON(value); err != nil {
			return fmt.Errorf("file index: %w", err)
		}
		return fn(e)
	})
}
