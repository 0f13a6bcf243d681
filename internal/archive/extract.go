package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// ErrUnsafe is wrapped by Extract's error when the archive holds an entry
// it refuses: one that could write outside the destination, a link, a
// device, a duplicate, or an entry outside the single top folder.
var ErrUnsafe = errors.New("unsafe archive")

// ErrNotArchive is wrapped by Extract's error when the stream is not an archive at all (no
// tar, compressed or not), as opposed to a damaged archive.
var ErrNotArchive = errors.New("not a tar archive (.tar.gz, .tar.zst or .tar)")

// ErrTooLarge is wrapped by Extract's error when the files exceed the
// limit set by WithMaxBytes.
var ErrTooLarge = errors.New("archive too large")

// Extract reads a backup archive (.tar.gz, .tar.zst or .tar, see NewReader) from r into dest, a folder the caller made
// (a private temporary one), and returns the name of the archive's single
// top folder, now dest/<top>.
//
// The archive is untrusted. Extract refuses the whole archive, wherever
// the offending entry stands, if any entry has an absolute name or a ".."
// component, is not a regular file or folder (symlinks, hard links,
// devices, fifos), is not inside the single top folder, or appears twice;
// and if the gzip stream is corrupt or truncated. On any error nothing is
// left in dest: entries are extracted into a hidden folder of dest that is
// removed on error and renamed into place on success. Errors name the
// entry; refusals wrap ErrUnsafe.
//
// Options: WithMaxBytes. Permission bits and modification times are kept; folders always stay
// owner-writable and -searchable, so the caller can remove them.
func Extract(ctx context.Context, r io.Reader, dest string, opts ...Option) (top string, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tmp, err := os.MkdirTemp(dest, ".extract-")
	if err != nil {
		return "", fmt.Errorf("extract: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("extract: %w", rerr)
		}
		if err != nil {
			top = ""
		}
	}()

	top, err = extractTo(ctx, r, tmp, o.maxBytes)
	if err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, top), filepath.Join(dest, top)); err != nil {
		return "", fmt.Errorf("extract: %w", err)
	}
	return top, nil
}

type dirMeta struct {
	path  string
	mode  fs.FileMode
	mtime time.Time
}

// extractor is one extraction in progress: what it has seen and the limits each new entry is
// checked against before a byte of it is written.
type extractor struct {
	ctx      context.Context
	tmp      string
	maxBytes int64
	// free is what the destination's file system had free at the start; -1 when unknown.
	free  int64
	buf   []byte
	top   string
	total int64
	// entries counts the entries admitted; dirSeen holds the folders' names (a second
	// entry of a file's name is refused when its creation finds the name taken: a set of
	// every name would grow with the archive).
	entries int
	dirSeen map[string]bool
	dirs    []dirMeta
	// others counts regular files other than the leading metadata and SHA256SUMS.
	others int
	// meta is the metadata, when it came before every other file; man the checksums of
	// SHA256SUMS, when it came before every file but the metadata.
	meta       *layout.Metadata
	man        *layout.PathSet
	filesBytes int64 // bytes of files/ entries so far, checked against meta.Files.Bytes
}

// extractTo extracts into tmp, returning the top folder's name.
func extractTo(ctx context.Context, r io.Reader, tmp string, maxBytes int64) (string, error) {
	gz, _, err := NewReader(ctxReader{ctx, r})
	if err != nil && ctx.Err() != nil {
		return "", fmt.Errorf("extract: %w", ctx.Err())
	}
	if err != nil {
		return "", fmt.Errorf("extract: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(ctxReader{ctx, gz})
	e := &extractor{ctx: ctx, tmp: tmp, maxBytes: maxBytes, free: freeSpace(tmp),
		buf: make([]byte, 256<<10), dirSeen: make(map[string]bool)}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		// No first header at all: what the gzip stream holds is not a tar (plain text, a
		// database), which is not a damaged archive but no archive.
		if err != nil && e.entries == 0 && (errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return "", fmt.Errorf("extract: the stream holds no tar (%v): %w", err, ErrNotArchive)
		}
		if err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // archive-wide PAX records (e.g. from git archive): no file
		}
		if err := e.entry(tr, hdr); err != nil {
			return "", err
		}
	}
	if e.top == "" {
		return "", errors.New("extract: the archive holds no backup folder")
	}
	// The gzip and zstd checksums are checked at the end of each member, past the tar
	// end marker for the last one: read to it, so a corrupt archive is not taken as good.
	if _, err := io.CopyBuffer(io.Discard, ctxReader{ctx, gz}, e.buf); err != nil {
		return "", fmt.Errorf("extract: %w", err)
	}
	return e.top, e.finishDirs()
}

// entry checks one entry by its header, then writes it.
func (e *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	clean, err := e.admit(hdr)
	if err != nil {
		return err
	}
	target := filepath.Join(e.tmp, filepath.FromSlash(clean))
	if hdr.Typeflag == tar.TypeDir {
		if err := os.MkdirAll(target, 0o700); errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("extract: refusing archive: entry %q: a file has that name: %w", hdr.Name, ErrUnsafe)
		} else if err != nil {
			return fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
		e.dirs = append(e.dirs, dirMeta{target, fs.FileMode(hdr.Mode).Perm() | 0o700, hdr.ModTime})
		return nil
	}
	if err := extractFile(tr, hdr, target, e.buf); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("extract: refusing archive: entry %q: duplicate entry: %w", hdr.Name, ErrUnsafe)
	} else if err != nil {
		return fmt.Errorf("extract %s: %w", hdr.Name, err)
	}
	return e.readLeading(strings.TrimPrefix(clean, e.top+"/"), target)
}

// admit checks an entry's header and returns its cleaned name: type, name, place, duplicates,
// and, for a file, its size against the manifest, WithMaxBytes and the free space, all before
// a byte of it is written.
func (e *extractor) admit(hdr *tar.Header) (string, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("extract: refusing archive: entry %q: %s: %w", hdr.Name, fmt.Sprintf(format, args...), ErrUnsafe)
	}
	if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir {
		return "", refuse("%s not allowed", typeName(hdr.Typeflag))
	}
	clean, err := cleanName(hdr.Name)
	if err != nil {
		return "", refuse("%v", err)
	}
	first, _, nested := strings.Cut(clean, "/")
	switch {
	case !nested && hdr.Typeflag != tar.TypeDir:
		return "", refuse("a file outside any top folder")
	case e.top == "":
		e.top = first
	case first != e.top:
		return "", refuse("outside the top folder %q", e.top)
	}
	e.entries++
	if hdr.Typeflag == tar.TypeDir {
		if e.dirSeen[clean] {
			return "", refuse("duplicate entry")
		}
		e.dirSeen[clean] = true
	}
	if hdr.Size < 0 {
		return "", refuse("negative size %d", hdr.Size)
	}
	// Sparse files expand to their logical size: a tiny archive could
	// fill the disk with zeros. A backup never holds them.
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", refuse("sparse file not allowed")
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return clean, nil
	}
	if err := e.checkListed(strings.TrimPrefix(clean, e.top+"/"), hdr.Size); err != nil {
		return "", refuse("%v", err)
	}
	return clean, e.checkSpace(hdr)
}

// checkListed checks a file against the leading metadata and SHA256SUMS, when the archive
// has them: a file they do not list, or one larger than its recorded size, is refused.
func (e *extractor) checkListed(rel string, size int64) error {
	leading := !nestedPath(rel) && (rel == layout.FileMetadata || rel == layout.FileSums)
	switch {
	case leading && rel == layout.FileMetadata && size > layout.MaxMetadataSize:
		return fmt.Errorf("%d bytes: metadata is at most %d", size, layout.MaxMetadataSize)
	case leading:
		return nil
	}
	e.others++
	if e.man == nil {
		if e.meta != nil && e.meta.WrittenByTool() {
			return fmt.Errorf("%s comes first but %s does not follow it: the archive cannot be checked", layout.FileMetadata, layout.FileSums)
		}
		return nil // an older or Python archive: only the free space bounds it
	}
	if !e.man.Has(rel) {
		return fmt.Errorf("not listed in %s", layout.FileSums)
	}
	if e.meta == nil || e.meta.FormatVersion < 1 {
		return nil
	}
	for _, m := range e.meta.Models {
		if m.File == rel && m.Bytes > 0 && size > m.Bytes {
			return fmt.Errorf("%d bytes, larger than the %d %s records for %s", size, m.Bytes, layout.FileMetadata, m.Label)
		}
	}
	if strings.HasPrefix(rel, layout.FilesDir+"/") {
		if e.filesBytes += size; e.filesBytes > e.meta.Files.Bytes {
			return fmt.Errorf("storage files reach %d bytes, more than the %d %s records", e.filesBytes, e.meta.Files.Bytes, layout.FileMetadata)
		}
	}
	return nil
}

// checkSpace refuses a file that would take the archive past WithMaxBytes or past the space
// the destination had free.
func (e *extractor) checkSpace(hdr *tar.Header) error {
	e.total += hdr.Size
	if e.maxBytes > 0 && e.total > e.maxBytes {
		return fmt.Errorf("extract: refusing archive: entry %q: files exceed %d bytes: %w", hdr.Name, e.maxBytes, ErrTooLarge)
	}
	if e.free >= 0 && e.total > e.free {
		return fmt.Errorf("extract: refusing archive: entry %q: files reach %d bytes, more than the %d bytes free in %s: %w",
			hdr.Name, e.total, e.free, filepath.Dir(e.tmp), ErrTooLarge)
	}
	return nil
}

// readLeading reads the metadata or SHA256SUMS just written, when they lead the archive, so
// that every later entry is checked against them. Unreadable metadata is left to the
// backup's own checks; an unreadable leading SHA256SUMS refuses the archive.
func (e *extractor) readLeading(rel, target string) error {
	switch {
	case e.others > 0 || nestedPath(rel):
		return nil
	case rel == layout.FileMetadata:
		data, err := os.ReadFile(target)
		if err != nil {
			return fmt.Errorf("extract: read %s: %w", rel, err)
		}
		if m, err := layout.ParseMetadata(data); err == nil {
			e.meta = m
		}
	case rel == layout.FileSums:
		f, err := os.Open(target)
		if err != nil {
			return fmt.Errorf("extract: read %s: %w", rel, err)
		}
		defer f.Close()
		man := layout.NewPathSet() // 8 bytes a path: an archive may hold millions of files
		if err := layout.EachSum(f, func(p, _ string) error { man.Add(p); return nil }); err != nil {
			return fmt.Errorf("extract: refusing archive: its leading %s: %v: %w", rel, err, ErrUnsafe)
		}
		e.man = man
	}
	return nil
}

func nestedPath(rel string) bool { return strings.Contains(rel, "/") }

// finishDirs sets folder modes and times last: adding entries changes a folder's mtime.
// Deepest first, so that a read-only parent does not block a child.
func (e *extractor) finishDirs() error {
	dirs := e.dirs
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i].path, string(filepath.Separator)) > strings.Count(dirs[j].path, string(filepath.Separator))
	})
	for _, d := range dirs {
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		if err := os.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("extract: %w", err)
		}
	}
	return nil
}

func extractFile(tr *tar.Reader, hdr *tar.Header, target string, buf []byte) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil { // a backup's folders are private
		return err
	}
	// O_EXCL: never write through something already there.
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(f, tr, buf)
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("read %d of %d bytes", n, hdr.Size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(target, fs.FileMode(hdr.Mode).Perm()); err != nil {
		return err
	}
	return os.Chtimes(target, hdr.ModTime, hdr.ModTime)
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeGNUSparse:
		return "GNU sparse file"
	}
	return fmt.Sprintf("entry type %q", t)
}

// freeSpace is what an extraction may write into dir: its file system's free space. A test
// replaces it to stand for a small disk.
var freeSpace = diskFree

// LeadingMetadata returns the metadata of a backup archive when it is the archive's first file
// (as Write puts it), reading nothing past it; nil without error when the first file is
// another (an older or Python archive), whose metadata only a full read finds.
func LeadingMetadata(ctx context.Context, r io.Reader) (*layout.Metadata, error) {
	gz, _, err := NewReader(ctxReader{ctx, r})
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(ctxReader{ctx, gz})
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		clean, err := cleanName(hdr.Name)
		_, rel, _ := strings.Cut(clean, "/")
		if err != nil || rel != layout.FileMetadata || hdr.Size > layout.MaxMetadataSize {
			return nil, nil
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read archive: %s: %w", layout.FileMetadata, err)
		}
		return layout.ParseMetadata(data)
	}
}
