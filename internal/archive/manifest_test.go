package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// testEntry is one file of a hand-made archive: data, or size zeros when data is nil.
type testEntry struct {
	name string
	data []byte
	size int64
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// writeStreamArchive writes entries under top/ as a .tar.gz file, streaming the zeros (a
// few hundred MiB of them compress to little), and returns its path and size.
func writeStreamArchive(t *testing.T, entries []testEntry) (string, int64) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "backup_20241201_143022.tar.gz")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	mt := time.Date(2024, 12, 1, 14, 30, 22, 0, time.UTC)
	if err := tw.WriteHeader(&tar.Header{Name: top + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var r io.Reader = strings.NewReader(string(e.data))
		size := int64(len(e.data))
		if e.data == nil {
			r, size = io.LimitReader(zeros{}, e.size), e.size
		}
		if err := tw.WriteHeader(&tar.Header{Name: top + "/" + e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: mt}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return name, fi.Size()
}

// toolMetadata is metadata this tool writes, recording fixtures and storage bytes.
func toolMetadata(t *testing.T, filesBytes int64, models ...layout.ModelEntry) []byte {
	t.Helper()
	m := &layout.Metadata{BackupTimestamp: time.Date(2024, 12, 1, 14, 30, 22, 0, time.UTC), FormatVersion: layout.FormatVersion,
		RunID: "r1", Status: layout.StatusComplete, Models: models, Files: layout.FilesSummary{Bytes: filesBytes},
		ManifestSHA256: strings.Repeat("0", 64)}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sumsOf is a SHA256SUMS listing the paths (with the checksum of "abc": only the listing and
// the order matter here).
func sumsOf(t *testing.T, paths ...string) []byte {
	t.Helper()
	h := sha256.Sum256([]byte("abc"))
	sw := layout.NewSumsWriter()
	for _, p := range paths {
		if err := sw.Add(p, hex.EncodeToString(h[:])); err != nil {
			t.Fatal(err)
		}
	}
	data, err := sw.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Item 8: an entry the leading metadata and SHA256SUMS do not allow is refused as soon as its
// header is read: its (huge) content is never decompressed, let alone written.
func TestExtractRefusesAtTheHeader(t *testing.T) {
	const huge = 128 << 20
	book := layout.ModelEntry{Label: "books.Book", File: "db_books_book.json", Rows: 1, Bytes: 10, SHA256: strings.Repeat("a", 64)}
	tests := []struct {
		name    string
		entries []testEntry
		unsafe  bool
		want    string
	}{
		{"unlisted entry", []testEntry{
			{name: layout.FileMetadata, data: toolMetadata(t, 3)},
			{name: layout.FileSums, data: sumsOf(t, "files/a")},
			{name: "files/a", data: []byte("abc")},
			{name: "files/zeros.bin", size: huge},
		}, true, `"` + top + `/files/zeros.bin": not listed in SHA256SUMS`},
		{"storage file larger than the metadata records", []testEntry{
			{name: layout.FileMetadata, data: toolMetadata(t, 3)},
			{name: layout.FileSums, data: sumsOf(t, "files/a")},
			{name: "files/a", size: huge},
		}, true, "storage files reach 134217728 bytes, more than the 3 backup_metadata.json records"},
		{"fixture larger than the metadata records", []testEntry{
			{name: layout.FileMetadata, data: toolMetadata(t, 0, book)},
			{name: layout.FileSums, data: sumsOf(t, "db_books_book.json")},
			{name: "db_books_book.json", size: huge},
		}, true, "134217728 bytes, larger than the 10 backup_metadata.json records for books.Book"},
		{"metadata of this tool first, no SHA256SUMS after it", []testEntry{
			{name: layout.FileMetadata, data: toolMetadata(t, 3)},
			{name: "files/zeros.bin", size: huge},
		}, true, "SHA256SUMS does not follow it"},
		{"old archive (SHA256SUMS first, metadata last): unlisted entry", []testEntry{
			{name: layout.FileSums, data: sumsOf(t, "files/a")},
			{name: "files/zeros.bin", size: huge},
			{name: layout.FileMetadata, data: toolMetadata(t, 3)},
		}, true, "not listed in SHA256SUMS"},
		{"no manifest: more than the free space", []testEntry{
			{name: "files/zeros.bin", size: huge},
			{name: layout.FileMetadata, data: []byte(`{"backup_timestamp": "2024-12-01T14:30:22"}`)},
		}, false, "more than the 67108864 bytes free"},
	}
	old := freeSpace
	freeSpace = func(string) int64 { return 64 << 20 }
	defer func() { freeSpace = old }()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, size := writeStreamArchive(t, tt.entries)
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cr := &countingReader{r: f}
			dest := t.TempDir()
			_, err = Extract(context.Background(), cr, dest)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Extract: %v, want an error saying %q", err, tt.want)
			}
			if tt.unsafe && !errors.Is(err, ErrUnsafe) || !tt.unsafe && !errors.Is(err, ErrTooLarge) {
				t.Errorf("Extract: %v, want ErrUnsafe %v / ErrTooLarge %v", err, tt.unsafe, !tt.unsafe)
			}
			// The huge entry is nearly all of the archive: refused at its header, it is
			// never read.
			if cr.n > size/4 {
				t.Errorf("read %d of the archive's %d bytes before refusing it", cr.n, size)
			}
			if ents, _ := os.ReadDir(dest); len(ents) != 0 {
				t.Errorf("refused archive left %d entries", len(ents))
			}
		})
	}
}

// Archives written before the metadata came first (metadata last) and archives without a
// manifest still extract when they fit.
func TestExtractOlderOrders(t *testing.T) {
	tests := map[string][]testEntry{
		"metadata last": {
			{name: layout.FileSums, data: sumsOf(t, "files/a", "restore.sh")},
			{name: "files/a", data: []byte("abc")},
			{name: "restore.sh", data: []byte("#!/bin/sh\n")},
			{name: layout.FileMetadata, data: toolMetadata(t, 3)},
		},
		"Python archive": {
			{name: "db_books_book.json", data: []byte("[]")},
			{name: layout.FileMetadata, data: []byte(`{"backup_timestamp": "2024-12-01T14:30:22"}`)},
		},
	}
	for name, entries := range tests {
		t.Run(name, func(t *testing.T) {
			path, _ := writeStreamArchive(t, entries)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dest := t.TempDir()
			got, err := Extract(context.Background(), f, dest)
			if err != nil || got != top {
				t.Fatalf("Extract: %q %v", got, err)
			}
			for _, e := range entries {
				if _, err := os.Stat(filepath.Join(dest, top, e.name)); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
