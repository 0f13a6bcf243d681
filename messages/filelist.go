package messages

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// FileEntry is one line of a task's key list (Key, Size) or of its sums output (Path, SHA256,
// Size). Lists are JSON lines so any key, newlines included, round-trips.
//
// A key is the raw bytes of a file name, which need not be UTF-8. JSON strings are, and
// encoding/json would replace each invalid byte with U+FFFD (and the copy would then look for
// a file that does not exist), so a Key or Path that is not valid UTF-8 is written as its
// bytes in base64 under "kb" or "pb" instead.
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
	Size    int64  `json:"n"`
	SHA256  string `json:"h,omitempty"`
	Mode    uint32 `json:"m,omitempty"`
	Changed bool   `json:"changed,omitempty"`
	ModTime int64  `json:"t,omitempty"`
	ETag    string `json:"e,omitempty"`
	Reuse   string `json:"r,omitempty"`
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
func (e FileEntry) MarshalJSON() ([]byte, error) { return json.Marshal(e.wire()) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (e *FileEntry) UnmarshalJSON(b []byte) error {
	var j fileEntryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = j.entry()
	return nil
}

// wire is the entry as it is written.
func (e FileEntry) wire() fileEntryJSON {
	j := fileEntryJSON{Stored: e.Stored, Size: e.Size, SHA256: e.SHA256, Mode: e.Mode, Changed: e.Changed, ModTime: e.ModTime, ETag: e.ETag, Reuse: e.Reuse, Plain: e.Plain}
	rawString(e.Key, &j.Key, &j.KeyB)
	rawString(e.Path, &j.Path, &j.PathB)
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
	return e
}

// FileListWriter writes FileEntry lines.
type FileListWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

// NewFileListWriter writes to w; call Flush at the end.
func NewFileListWriter(w io.Writer) *FileListWriter {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &FileListWriter{bw: bw, enc: enc}
}

// Add writes one entry. Lists are long (a line per file): the wire form is encoded directly,
// not through MarshalJSON, whose output encoding/json would scan and compact again.
func (w *FileListWriter) Add(e FileEntry) error { return w.enc.Encode(e.wire()) }

// Flush writes buffered entries.
func (w *FileListWriter) Flush() error { return w.bw.Flush() }

// MarshalFileEntry is e as one line of a list, without the newline.
func MarshalFileEntry(e FileEntry) ([]byte, error) { return json.Marshal(e.wire()) }

// FileListReader reads FileEntry lines one at a time.
type FileListReader struct {
	dec  *json.Decoder
	line int
}

// NewFileListReader reads entries from r.
func NewFileListReader(r io.Reader) *FileListReader {
	return &FileListReader{dec: json.NewDecoder(bufio.NewReaderSize(r, 64<<10))}
}

// Next returns the next entry; ok is false at the end. An error names the entry's number.
func (r *FileListReader) Next() (e FileEntry, ok bool, err error) {
	var j fileEntryJSON // decoded directly: UnmarshalJSON would parse each line twice
	if err := r.dec.Decode(&j); err == io.EOF {
		return FileEntry{}, false, nil
	} else if err != nil {
		return FileEntry{}, false, fmt.Errorf("entry %d: %w", r.line+1, err)
	}
	r.line++
	return j.entry(), true, nil
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
