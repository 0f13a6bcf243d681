package layout

import (
	"fmt"
	"io"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/encryption"
)

// PlainSumsDir holds an encrypted backup's manifests of plaintext sums, one per run that
// encrypted files into it (PlainSumsName).
const PlainSumsDir = "plainsums"

// PlainSumsName is the manifest of plaintext sums of the run with that id:
// "plainsums/<run>.age".
func PlainSumsName(run string) string { return PlainSumsDir + "/" + run + encryption.Ext }

// PlainSumsWriter collects, for an encrypted backup, the plaintext SHA-256 of every fixture
// and file a run encrypted, in any order, and writes them sorted by path (byte order) as
// coreutils lines "<sum>  <path without .age>", encrypted as a whole: the content a restore
// with the key checks end to end, which the backup's readers without it never see. Entries
// beyond its memory budget wait in sorted runs on disk (like SumsWriter, which it uses).
type PlainSumsWriter struct {
	sums *SumsWriter
}

// NewPlainSumsWriter returns an empty writer that spills runs of about budget bytes under dir
// (an existing folder; "" keeps everything in memory). Close removes them.
func NewPlainSumsWriter(dir string, budget int) *PlainSumsWriter {
	if dir == "" {
		return &PlainSumsWriter{sums: NewSumsWriter()}
	}
	return &PlainSumsWriter{sums: NewSpillingSumsWriter(dir, budget)}
}

// Add records the plaintext sum of the file stored at path (its .age, if any, is dropped).
func (w *PlainSumsWriter) Add(path, plain string) error {
	if err := w.sums.Add(strings.TrimSuffix(path, encryption.Ext), plain); err != nil {
		return fmt.Errorf("plaintext sums: %w", err)
	}
	return nil
}

// WriteTo writes the manifest encrypted to rc into out and returns the bytes written to out.
// A path added twice is an error.
func (w *PlainSumsWriter) WriteTo(out io.Writer, rc *encryption.Recipients) (int64, error) {
	cw := &countingWriter{w: out}
	ew, err := rc.Encrypt(cw)
	if err != nil {
		return 0, fmt.Errorf("plaintext sums: %w", err)
	}
	if _, err := w.sums.WriteTo(ew); err != nil {
		return cw.n, fmt.Errorf("plaintext sums: %w", err)
	}
	if err := ew.Close(); err != nil {
		return cw.n, fmt.Errorf("plaintext sums: %w", err)
	}
	return cw.n, nil
}

// Close removes the writer's run files.
func (w *PlainSumsWriter) Close() error { return w.sums.Close() }
