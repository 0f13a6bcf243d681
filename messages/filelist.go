package messages

import (
	"bufio"
	"fmt"
	"io"
	"unicode/utf8"
)

// FileEntry is one line of a task's key list (Key, Size) or of its sums output (Path, SHA256,
// Size). Lists are JSON lines so any key, newlines included, round-trips.
//
// A key is the raw bytes of a file name, which need not be UTF-8. JSON strings are, and
// encoding/json would replace each invalid byte with U+FFFD (and the copy would then look for
// a file that does not exist), so a Key, Path, Stored or Reuse that is not valid UTF-8 is
// written as its bytes in base64 under "kb", "pb", "sb" or "rb" instead.
type FileEntry struct {
	Key  string
	Path string
	// Stored is the file's key on the backup's side when it is not the task's prefix and
	// Key: a name escaped for a backup on S3 (see storage.EscapeKey). A backup's copy writes
	// it, a restore's reads it.
	Stored string
	Size   int64
	SHA256 string
	// Mode is a file's permission bits: in sums, the source file's; in a restore's key list,
	// the ones to restore it with (0: the backup file's own).
	Mode uint32
	// Changed marks a file that changed while it was backed up, on its retry too (sums only).
	Changed bool
	// ModTime is the source file's modification time in Unix nanoseconds (0: unknown), and
	// ETag an S3 source object's ETag: with Size they tell an unchanged file from the base
	// backup's index without reading it.
	ModTime int64
	ETag    string
	// Reuse, on a key list, says the file is unchanged since an earlier backup whose copy of
	// it is at this key under CopyTask.Base, with sum SHA256: the worker does not read the
	// source (unless CopyTask.Checksum) and reuses that copy — a hard link on a local
	// destination; on a content-addressed one (CopyTask.Objects) the object is already there.
	Reuse string
	// Plain, on an encrypted backup's sums, is the SHA-256 of the file's plaintext (SHA256 is
	// that of the bytes stored): it goes into the backup's encrypted manifest of plaintext
	// sums, never into its index or SHA256SUMS.
	Plain string
}

// fileEntryJSON is FileEntry on the wire.
type fileEntryJSON struct {
	Key     string `json:"k,omitempty"`
	KeyB    []byte `json:"kb,omitempty"`
	Path    string `json:"p,omitempty"`
	PathB   []byte `json:"pb,omitempty"`
	Stored  string `json:"s,omitempty"`
	StoredB []byte `json:"sb,omitempty"`
	Size    int64  `json:"n"`
	SHA256  string `json:"h,omitempty"`
	Mode    uint32 `json:"m,omitempty"`
	Changed bool   `json:"changed,omitempty"`
	ModTime int64  `json:"t,omitempty"`
	ETag    string `json:"e,omitempty"`
	Reuse   string `json:"r,omitempty"`
	ReuseB  []byte `json:"rb,omitempty"`
	Plain   string `json:"ph,omitempty"`
}

// rawString puts s in str when JSON can carry it, else its bytes in raw.
func rawString(s string, str *string, raw *[]byte) {
	if utf8.ValidString(s) {
		*str = s
	} else {
		*raw = []byte(s)
	}
}

// MarshalJSON writes the entry, keeping a name that is not UTF-8 byte for byte.
func (e FileEntry) MarshalJSON() ([]byte, error) {
	return appendEntry(make([]byte, 0, entrySize(e)), e)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (e *FileEntry) UnmarshalJSON(b []byte) error { return parseEntry(b, e) }

// wire is the entry as it is written.
func (e FileEntry) wire() fileEntryJSON {
	j := fileEntryJSON{Size: e.Size, SHA256: e.SHA256, Mode: e.Mode, Changed: e.Changed, ModTime: e.ModTime, ETag: e.ETag, Plain: e.Plain}
	rawString(e.Key, &j.Key, &j.KeyB)
	rawString(e.Path, &j.Path, &j.PathB)
	rawString(e.Stored, &j.Stored, &j.StoredB)
	rawString(e.Reuse, &j.Reuse, &j.ReuseB)
	return j
}

// entry is the entry a line held.
func (j fileEntryJSON) entry() FileEntry {
	e := FileEntry{Key: j.Key, Path: j.Path, Stored: j.Stored, Size: j.Size, SHA256: j.SHA256, Mode: j.Mode, Changed: j.Changed, ModTime: j.ModTime, ETag: j.ETag, Reuse: j.Reuse, Plain: j.Plain}
	if j.KeyB != nil {
		e.Key = string(j.KeyB)
	}
	if j.PathB != nil {
		e.Path = string(j.PathB)
	}
	if j.StoredB != nil {
		e.Stored = string(j.StoredB)
	}
	if j.ReuseB != nil {
		e.Reuse = string(j.ReuseB)
	}
	return e
}

// FileListWriter writes FileEntry lines.
type FileListWriter struct {
	bw  *bufio.Writer
	buf []byte
}

// NewFileListWriter writes to w; call Flush at the end.
func NewFileListWriter(w io.Writer) *FileListWriter {
	return &FileListWriter{bw: bufio.NewWriter(w)}
}

// Add writes one entry, a line of JSON.
func (w *FileListWriter) Add(e FileEntry) error {
	var err error
	if w.buf, err = appendEntry(w.buf[:0], e); err != nil {
		return err
	}
	w.buf = append(w.buf, '\n')
	_, err = w.bw.Write(w.buf)
	return err
}

// Flush writes buffered entries.
func (w *FileListWriter) Flush() error { return w.bw.Flush() }

// MarshalFileEntry is e as one line of a list, without the newline.
func MarshalFileEntry(e FileEntry) ([]byte, error) {
	return appendEntry(make([]byte, 0, entrySize(e)), e)
}

// FileListReader reads FileEntry lines one at a time: one JSON object a line, blank lines
// skipped.
type FileListReader struct {
	br   *bufio.Reader
	long []byte
	line int
}

// MaxEntryLine bounds one entry's line, far above any real one (names of a few KiB, each
// escaped at most six times over).
const MaxEntryLine = 1 << 20

// NewFileListReader reads entries from r.
func NewFileListReader(r io.Reader) *FileListReader {
	return &FileListReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next entry; ok is false at the end. An error names the entry's number.
func (r *FileListReader) Next() (e FileEntry, ok bool, err error) {
	for {
		line, err := r.readLine()
		if len(line) == 0 && err == io.EOF {
			return FileEntry{}, false, nil
		}
		if err != nil && err != io.EOF {
			return FileEntry{}, false, fmt.Errorf("entry %d: %w", r.line+1, err)
		}
		if line = trimJSONSpace(line); len(line) == 0 {
			continue
		}
		if err := parseEntry(line, &e); err != nil {
			return FileEntry{}, false, fmt.Errorf("entry %d: %w", r.line+1, err)
		}
		r.line++
		return e, true, nil
	}
}

// readLine returns the next line without its newline; it is valid until the next call.
func (r *FileListReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.long = append(r.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = r.br.ReadSlice('\n')
			if r.long = append(r.long, line...); len(r.long) > MaxEntryLine {
				// A list is untrusted input (a base's index may be a gzip bomb of one line).
				return nil, fmt.Errorf("line longer than %d bytes", MaxEntryLine)
			}
		}
		line = r.long
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	return line, err
}

// trimJSONSpace trims the whitespace JSON allows around a value.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// Line is the number of entries read so far.
func (r *FileListReader) Line() int { return r.line }

// ReadFileList calls fn for each entry of a list, streaming.
func ReadFileList(r io.Reader, fn func(FileEntry) error) error {
	lr := NewFileListReader(r)
	for {
		e, ok, err := lr.Next()
		if err != nil {
			return fmt.Errorf("file list %w", err)
		}
		if !ok {
			return nil
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
