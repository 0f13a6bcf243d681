package layout

import (
	"bufio"
	"fmt"
	"io"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/messages"
)

// FileIndexReader reads a file index (FileIndex) one entry at a time, checking that it is
// sorted by Path as written: a reader merging it with another sorted list relies on that.
type FileIndexReader struct {
	r    *messages.FileListReader
	last string
}

// NewFileIndexReader reads the index from r.
func NewFileIndexReader(r io.Reader) *FileIndexReader {
	return &FileIndexReader{r: messages.NewFileListReader(r)}
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
	sorted *extsort.Sorter
}

// NewFileIndexWriter returns an empty writer that spills runs of about budget bytes under dir
// (an existing folder; "" keeps everything in memory). Close removes them.
func NewFileIndexWriter(dir string, budget int) *FileIndexWriter {
	return &FileIndexWriter{sorted: extsort.New(dir, budget)}
}

// Add records one file. Only what the index keeps is written: Path, Key, Stored, Size,
// ModTime, ETag, SHA256 and Mode.
func (w *FileIndexWriter) Add(e messages.FileEntry) error {
	if err := checkSumPath(e.Path); err != nil {
		return fmt.Errorf("file index: %w", err)
	}
	e.Changed, e.Reuse = false, ""
	data, err := messages.MarshalFileEntry(e)
	if err != nil {
		return fmt.Errorf("file index: %s: %w", e.Path, err)
	}
	return w.sorted.Add(e.Path, data)
}

// Len is the number of entries added.
func (w *FileIndexWriter) Len() int { return w.sorted.Len() }

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

// Close removes the writer's run files.
func (w *FileIndexWriter) Close() error { return w.sorted.Close() }
