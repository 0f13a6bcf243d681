package messages

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// FileEntry is one line of a task's key list (Key, Size) or of its sums output (Path, SHA256,
// Size). Lists are JSON lines so any key, newlines included, round-trips.
type FileEntry struct {
	Key    string `json:"k,omitempty"`
	Path   string `json:"p,omitempty"`
	Size   int64  `json:"n"`
	SHA256 string `json:"h,omitempty"`
	// Mode is a file's permission bits: in sums, the source file's; in a restore's key list,
	// the ones to restore it with (0: the backup file's own).
	Mode uint32 `json:"m,omitempty"`
	// Changed marks a file that changed while it was backed up, on its retry too (sums only).
	Changed bool `json:"changed,omitempty"`
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

// Add writes one entry.
func (w *FileListWriter) Add(e FileEntry) error { return w.enc.Encode(e) }

// Flush writes buffered entries.
func (w *FileListWriter) Flush() error { return w.bw.Flush() }

// ReadFileList calls fn for each entry of a list, streaming.
func ReadFileList(r io.Reader, fn func(FileEntry) error) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	for line := 1; ; line++ {
		var e FileEntry
		if err := dec.Decode(&e); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("file list entry %d: %w", line, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}
