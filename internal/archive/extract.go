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
	"time"

	"github.com/klauspost/compress/gzip"
)

// ErrUnsafe is wrapped by Extract's error when the archive holds an entry
// it refuses: one that could write outside the destination, a link, a
// device, a duplicate, or an entry outside the single top folder.
var ErrUnsafe = errors.New("unsafe archive")

// ErrTooLarge is wrapped by Extract's error when the files exceed the
// limit set by WithMaxBytes.
var ErrTooLarge = errors.New("archive too large")

// Extract reads a tar.gz backup from r into dest, a folder the caller made
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

// extractTo extracts into tmp, returning the top folder's name.
func extractTo(ctx context.Context, r io.Reader, tmp string, maxBytes int64) (string, error) {
	gz, err := gzip.NewReader(ctxReader{ctx, r})
	if err != nil {
		return "", fmt.Errorf("extract: not a gzip stream: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(ctxReader{ctx, gz})

	var top string
	var total int64
	seen := make(map[string]bool)
	var dirs []dirMeta
	buf := make([]byte, 256<<10)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		refuse := func(format string, args ...any) error {
			return fmt.Errorf("extract: refusing archive: entry %q: %s: %w", hdr.Name, fmt.Sprintf(format, args...), ErrUnsafe)
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeXGlobalHeader:
			continue // archive-wide PAX records (e.g. from git archive): no file
		default:
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
		case top == "":
			top = first
		case first != top:
			return "", refuse("outside the top folder %q", top)
		}
		if seen[clean] {
			return "", refuse("duplicate entry")
		}
		seen[clean] = true
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
		if total += hdr.Size; maxBytes > 0 && total > maxBytes {
			return "", fmt.Errorf("extract: refusing archive: entry %q: files exceed %d bytes: %w", hdr.Name, maxBytes, ErrTooLarge)
		}

		target := filepath.Join(tmp, filepath.FromSlash(clean))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return "", fmt.Errorf("extract %s: %w", hdr.Name, err)
			}
			dirs = append(dirs, dirMeta{target, fs.FileMode(hdr.Mode).Perm() | 0o700, hdr.ModTime})
			continue
		}
		if err := extractFile(tr, hdr, target, buf); err != nil {
			return "", fmt.Errorf("extract %s: %w", hdr.Name, err)
		}
	}
	if top == "" {
		return "", errors.New("extract: the archive holds no backup folder")
	}
	// The gzip checksum is checked at the end of the stream, past the tar
	// end marker: read to it, so a corrupt archive is not taken as good.
	if _, err := io.CopyBuffer(io.Discard, ctxReader{ctx, gz}, buf); err != nil {
		return "", fmt.Errorf("extract: %w", err)
	}
	// Folder modes and times last: adding entries changes a folder's mtime.
	// Deepest first, so that a read-only parent does not block a child.
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i].path, string(filepath.Separator)) > strings.Count(dirs[j].path, string(filepath.Separator))
	})
	for _, d := range dirs {
		if err := os.Chmod(d.path, d.mode); err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
		if err := os.Chtimes(d.path, d.mtime, d.mtime); err != nil {
			return "", fmt.Errorf("extract: %w", err)
		}
	}
	return top, nil
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
