// Package archive writes and reads a backup as a .tar.gz: one top folder
// (backup_YYYYMMDD_HHMMSS/) holding the backup, readable by `tar xzf`,
// with backup_metadata.json and SHA256SUMS as its first files, so that a
// reader knows every entry's checksum (and the sizes the metadata records)
// before it writes a byte of the rest. An archive is published under its
// name only once complete. Writing uses parallel gzip (pgzip); both ways
// stream, so memory stays flat whatever the backup's size.
//
// Extract treats the archive as hostile: any entry that could write
// outside the destination or is anything but a regular file or a folder
// makes it refuse the whole archive, leaving nothing behind.
package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/klauspost/pgzip"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// Stats counts what Write archived or Extract extracted.
type Stats struct {
	Files int   // regular files
	Dirs  int   // folders, the top one included
	Bytes int64 // file content bytes, before compression
}

type options struct {
	progress  func(n int64)
	blockSize int
	blocks    int
	maxBytes  int64
	entry     EntryReader
}

// Option tunes Write or Extract.
type Option func(*options)

// writeOptions are Write's and WriteObjects' options: 1 MiB blocks, GOMAXPROCS of them, unless
// opts say otherwise.
func writeOptions(opts []Option) options {
	o := options{blockSize: 1 << 20, blocks: runtime.GOMAXPROCS(0)}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// gzipWriter is the parallel gzip stream (default level) into w that o asks for.
func (o options) gzipWriter(w io.Writer) (*pgzip.Writer, error) {
	gz, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if err := gz.SetConcurrency(o.blockSize, o.blocks); err != nil {
		return nil, err
	}
	return gz, nil
}

// WithMaxBytes makes Extract refuse an archive whose files hold more than
// n bytes in all (a gzip bomb, or not the backup expected). 0: no limit.
func WithMaxBytes(n int64) Option { return func(o *options) { o.maxBytes = n } }

// WithConcurrency (Write) sets pgzip's block size in bytes and the number of blocks
// compressed in parallel; memory use is about blockSize × blocks × 2.
// Defaults: 1 MiB blocks, GOMAXPROCS blocks.
func WithConcurrency(blockSize, blocks int) Option {
	return func(o *options) { o.blockSize, o.blocks = blockSize, blocks }
}

// Write writes the folder dir as a tar.gz to w, under the top folder top
// (a single path component, e.g. "backup_20241201_143022"). The top folder
// comes first, then backup_metadata.json and SHA256SUMS at dir's top, then
// the rest in sorted walk order (deterministic for a given tree). Only regular files
// and folders are archived, with their permission bits and modification
// time (seconds); owners are not recorded. Anything else (a symlink, a
// device) is an error. Cancelling ctx stops the write promptly.
//
// w receives a partial archive on error; callers write to a temporary file.
func Write(ctx context.Context, w io.Writer, dir, top string, opts ...Option) (Stats, error) {
	var st Stats
	o := writeOptions(opts)
	if top == "" || top == "." || top == ".." || strings.ContainsAny(top, "/\\\x00") {
		return st, fmt.Errorf("archive %s: top folder %q must be one path component", dir, top)
	}
	rootInfo, err := os.Stat(dir)
	if err != nil {
		return st, fmt.Errorf("archive %s: %w", dir, err)
	}
	if !rootInfo.IsDir() {
		return st, fmt.Errorf("archive %s: not a folder", dir)
	}
	gz, err := o.gzipWriter(w)
	if err != nil {
		return st, fmt.Errorf("archive %s: %w", dir, err)
	}
	closed := false
	defer func() {
		if !closed {
			gz.Close() // stop pgzip's goroutines; the error is already reported
		}
	}()
	tw := tar.NewWriter(gz)
	buf := make([]byte, 256<<10)
	err = writeTree(ctx, tw, dir, top, rootInfo, &st, buf, o.progress)
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		closed = true
		err = gz.Close()
	}
	if err != nil {
		return st, fmt.Errorf("archive %s: %w", dir, err)
	}
	return st, nil
}

// leading are the files at a backup's top written first, in this order: a reader checks
// every later entry against them as soon as it reads its header.
var leading = []string{layout.FileMetadata, layout.FileSums}

// writeTree writes the top folder, the leading files, then the rest of dir in walk order.
func writeTree(ctx context.Context, tw *tar.Writer, dir, top string, rootInfo fs.FileInfo, st *Stats, buf []byte, progress func(int64)) error {
	add := func(p, rel string, info fs.FileInfo) error {
		before := st.Bytes
		err := addEntry(ctx, tw, p, top, rel, info, st, buf)
		if progress != nil && st.Bytes > before {
			progress(st.Bytes - before)
		}
		return err
	}
	if err := add(dir, ".", rootInfo); err != nil {
		return err
	}
	first := map[string]bool{}
	for _, name := range leading {
		info, err := os.Lstat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := add(filepath.Join(dir, name), name, info); err != nil {
			return err
		}
		first[name] = true
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." || first[rel] {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return add(p, rel, info)
	})
}

// addEntry writes one header, and the content of a regular file.
func addEntry(ctx context.Context, tw *tar.Writer, p, top, rel string, info fs.FileInfo, st *Stats, buf []byte) error {
	name := top
	if rel != "." {
		name = top + "/" + rel
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(info.Mode().Perm()),
		ModTime: info.ModTime().Truncate(time.Second),
	}
	switch {
	case info.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case info.Mode().IsRegular():
		hdr.Typeflag = tar.TypeReg
		hdr.Size = info.Size()
	default:
		return fmt.Errorf("%s: not a regular file or folder (%v)", rel, info.Mode().Type())
	}
	if hdr.Typeflag == tar.TypeDir {
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		st.Dirs++
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	n, err := io.CopyBuffer(tw, ctxReader{ctx, io.LimitReader(f, hdr.Size)}, buf)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("%s: file shrank from %d to %d bytes while archived", rel, hdr.Size, n)
	}
	st.Files++
	st.Bytes += n
	return nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// Entry is one archive entry, as List returns it.
type Entry struct {
	Name    string // as in the archive
	Size    int64
	Mode    fs.FileMode // permission bits, with fs.ModeDir for folders
	ModTime time.Time
	IsDir   bool
}

// List returns the entries of an archive (any compression, see NewReader), in archive order, without checking
// them (Extract does). The metadata of a backup comes first (last in archives written before
// this order).
func List(ctx context.Context, r io.Reader) ([]Entry, error) {
	gz, _, err := NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("list archive: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(ctxReader{ctx, gz})
	var entries []Entry
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list archive: %w", err)
		}
		e := Entry{Name: hdr.Name, Size: hdr.Size, Mode: fs.FileMode(hdr.Mode).Perm(), ModTime: hdr.ModTime, IsDir: hdr.Typeflag == tar.TypeDir}
		if e.IsDir {
			e.Mode |= fs.ModeDir
		}
		entries = append(entries, e)
	}
}

// cleanName checks an entry's name and returns it cleaned, slash-separated
// and without a trailing slash.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case strings.IndexByte(name, 0) >= 0:
		return "", errors.New("name holds a NUL byte")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("absolute path")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New("'..' component")
		}
	}
	clean := path.Clean(name)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.HasPrefix(clean, "/") {
		return "", errors.New("escapes the archive after cleaning")
	}
	return clean, nil
}
