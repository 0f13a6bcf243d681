package archive

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// Compression is how an archive's tar stream is compressed.
type Compression string

// The compressions an archive can have; each has its file name extension (Ext).
const (
	Gzip Compression = "gzip" // .tar.gz: gzip members, concatenated
	Zstd Compression = "zstd" // .tar.zst: zstd frames, concatenated
	None Compression = "none" // .tar: the tar stream as is
)

// ParseCompression reads a --compression value; "" is Gzip.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(strings.ToLower(strings.TrimSpace(s))); c {
	case "":
		return Gzip, nil
	case Gzip, Zstd, None:
		return c, nil
	}
	return "", fmt.Errorf("--compression %q: must be gzip, zstd or none", s)
}

// Ext is the file name extension of an archive of this compression.
func (c Compression) Ext() string {
	switch c {
	case Zstd:
		return ".tar.zst"
	case None:
		return ".tar"
	}
	return layout.ArchiveExt
}

// CompressionOf is the compression an archive's file name says it has; ok is false for a
// name without an archive extension.
func CompressionOf(name string) (c Compression, ok bool) {
	switch {
	case strings.HasSuffix(name, Zstd.Ext()):
		return Zstd, true
	case strings.HasSuffix(name, Gzip.Ext()):
		return Gzip, true
	case strings.HasSuffix(name, None.Ext()):
		return None, true
	}
	return Gzip, false
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// NewReader returns the tar stream of an archive of any of the three compressions, told
// apart by their first bytes (a name can lie; the bytes cannot): gzip members and zstd frames
// are read through to the end of the last one, anything else is taken as a plain tar, which
// the tar reader then accepts or refuses. Close releases the decompressor, not r.
func NewReader(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 4096) // small: a refusal at a header reads little past it
	head, err := br.Peek(4)
	if err != nil && len(head) == 0 {
		if err == io.EOF {
			return nil, "", fmt.Errorf("empty stream: %w", ErrNotArchive)
		}
		return nil, "", err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, Gzip, fmt.Errorf("not a gzip stream (%v): %w", err, ErrNotArchive)
		}
		return gz, Gzip, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, Zstd, fmt.Errorf("not a zstd stream (%v): %w", err, ErrNotArchive)
		}
		return zr.IOReadCloser(), Zstd, nil
	}
	return io.NopCloser(br), None, nil
}
