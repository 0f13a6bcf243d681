package layout

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/storage"
)

// SHA256SUMS is written in GNU coreutils' sha256sum format, so that
// `sha256sum -c SHA256SUMS` checks a backup without this tool:
//
//	<64 hex>  <path>\n
//
// Paths are relative to the backup folder, with "/" separators. A path
// holding "\n", "\r" or "\\" is written in coreutils' escaped form: the line
// starts with "\\" and those characters become "\\n", "\\r" and "\\\\",
// as coreutils 9 writes them.

// SumsWriter collects checksums and writes them as a deterministic
// SHA256SUMS: one line per path, sorted by path (byte order). It is not
// safe for concurrent use. It holds each sum in binary, and finds a path
// added twice when it writes: a backup of millions of files lists them all,
// so an entry costs its path and 32 bytes, no more — and a spilling writer
// (NewSpillingSumsWriter) keeps only a budget of them in memory.
type SumsWriter struct {
	sorted *extsort.Sorter
}

// NewSumsWriter returns an empty SumsWriter that keeps its entries in memory.
func NewSumsWriter() *SumsWriter { return &SumsWriter{sorted: extsort.New("", 1)} }

// NewSpillingSumsWriter returns an empty SumsWriter that spills sorted runs of about budget
// bytes into files under dir, an existing folder, and merges them k-way when it writes: the
// coordinator's memory then depends on the number of runs, not of files. Close removes them.
func NewSpillingSumsWriter(dir string, budget int) *SumsWriter {
	return &SumsWriter{sorted: extsort.New(dir, budget)}
}

// Close removes the run files a spilling SumsWriter wrote.
func (s *SumsWriter) Close() error { return s.sorted.Close() }

// Add records the hex sha256 of the file at rel, a slash-separated path
// relative to the backup folder.
func (s *SumsWriter) Add(rel, sum string) error {
	if err := checkSumPath(rel); err != nil {
		return fmt.Errorf("add checksum: %w", err)
	}
	bin := make([]byte, sha256.Size)
	if len(sum) != 2*sha256.Size {
		return fmt.Errorf("add checksum %s: %q is not 64 hex digits", rel, sum)
	}
	if _, err := hex.Decode(bin, []byte(sum)); err != nil {
		return fmt.Errorf("add checksum %s: %q is not 64 hex digits", rel, sum)
	}
	return s.sorted.Add(rel, bin)
}

// Len returns the number of paths recorded.
func (s *SumsWriter) Len() int { return s.sorted.Len() }

// WriteTo writes the SHA256SUMS content to w. A path added twice is an error; a spilling
// writer finds it as it merges, so w may then have received the lines before it. One that
// kept everything in memory writes nothing then.
func (s *SumsWriter) WriteTo(w io.Writer) (int64, error) {
	if !s.sorted.Spilled() {
		if err := s.sorted.Each(duplicateCheck()); err != nil {
			return 0, fmt.Errorf("write %s: %w", FileSums, err)
		}
	}
	bw := bufio.NewWriter(w)
	var (
		n    int64
		hexs [2 * sha256.Size]byte
	)
	dup := duplicateCheck()
	err := s.sorted.Each(func(p string, sum []byte) error {
		if err := dup(p, sum); err != nil {
			return err
		}
		hex.Encode(hexs[:], sum)
		k, err := bw.WriteString(sumLine(p, string(hexs[:])))
		n += int64(k)
		return err
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", FileSums, err)
	}
	return n, nil
}

// duplicateCheck returns a function that, called with paths in order, fails on a path equal
// to the one before.
func duplicateCheck() func(p string, _ []byte) error {
	first, prev := true, ""
	return func(p string, _ []byte) error {
		if !first && p == prev {
			return fmt.Errorf("%s added twice", p)
		}
		first, prev = false, p
		return nil
	}
}

// Bytes returns the SHA256SUMS content.
func (s *SumsWriter) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile writes dir/SHA256SUMS (synced to disk) and returns the hex
// sha256 of its content, the metadata's manifest_sha256.
func (s *SumsWriter) WriteFile(dir string) (manifestSHA256 string, err error) {
	data, err := s.Bytes()
	if err != nil {
		return "", err
	}
	if err := writeFileSync(filepath.Join(dir, FileSums), data, FileMode); err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

var sumEscaper = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")

func sumLine(p, sum string) string {
	if strings.ContainsAny(p, "\\\n\r") {
		return "\\" + sum + "  " + sumEscaper.Replace(p) + "\n"
	}
	return sum + "  " + p + "\n"
}

// checkSumPath accepts a clean, relative, slash-separated path that stays
// inside the backup folder.
func checkSumPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q holds a NUL byte", p)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is absolute", p)
	case path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../"):
		return fmt.Errorf("path %q is not a clean path inside the backup", p)
	}
	return nil
}

// maxSumsLine bounds a SHA256SUMS line: 64 hex digits, two separators and a
// path of at most PATH_MAX (4096) bytes, each of which may be escaped.
const maxSumsLine = 2 + 64 + 2 + 2*4096 + 1

// EachSum calls fn for each line of a SHA256SUMS stream, in order, without holding the
// manifest in memory (a path listed twice is the caller's to catch, if it cares).
func EachSum(r io.Reader, fn func(p, sum string) error) error {
	return scanSums(r, func(_ int, p, sum string) error { return fn(p, sum) })
}

// HashSums reads a SHA256SUMS file as EachSum does, passing each line to fn, and returns the
// hex SHA-256 of its bytes: one pass checks a manifest against its metadata and reads what it
// lists. A line longer than any a manifest holds ends it at once (a file of one huge line
// would otherwise be hashed whole, or held, before anything is said).
func HashSums(r io.Reader, fn func(p, sum string) error) (string, error) {
	h := sha256.New()
	if err := EachSum(io.TeeReader(r, h), fn); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ParseSums reads a SHA256SUMS file in coreutils format (text "  " or binary
// " *" mode, escaped lines) and returns hex sha256 (lower case) by path.
// The input is untrusted: absolute paths, ".." components, duplicates and
// malformed lines are errors that name the line.
func ParseSums(r io.Reader) (map[string]string, error) {
	sums := make(map[string]string)
	err := scanSums(r, func(line int, p, sum string) error {
		if _, dup := sums[p]; dup {
			return fmt.Errorf("parse %s line %d: %q listed twice", FileSums, line, p)
		}
		sums[p] = sum
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sums, nil
}

func parseSumLine(l string) (p, sum string, err error) {
	escaped := strings.HasPrefix(l, "\\")
	if escaped {
		l = l[1:]
	}
	if len(l) < 64+2+1 {
		return "", "", errors.New("want \"<64 hex digits>  <path>\"")
	}
	sum, rest := l[:64], l[64:]
	if !isHexSHA256(sum) {
		return "", "", fmt.Errorf("checksum %q is not 64 hex digits", sum)
	}
	if rest[0] != ' ' || (rest[1] != ' ' && rest[1] != '*') {
		return "", "", errors.New("want two spaces (or space and '*') after the checksum")
	}
	p = rest[2:]
	if escaped {
		if p, err = unescapeSumPath(p); err != nil {
			return "", "", err
		}
	}
	if err := checkSumPath(p); err != nil {
		return "", "", err
	}
	return p, strings.ToLower(sum), nil
}

func unescapeSumPath(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("path %q ends in a lone backslash", s)
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("path %q: unknown escape \\%c", s, s[i])
		}
	}
	return b.String(), nil
}

// HashFile returns the hex sha256 and the size of the file at name.
func HashFile(ctx context.Context, name string) (sum string, size int64, err error) {
	f, err := storage.OpenRegular(name)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", name, err)
	}
	defer f.Close()
	sum, size, err = HashReader(ctx, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", name, err)
	}
	return sum, size, nil
}

// HashReader returns the hex SHA-256 and length of what r holds, stopping when ctx ends.
func HashReader(ctx context.Context, r io.Reader) (sum string, size int64, err error) {
	h := sha256.New()
	if size, err = HashInto(ctx, h, r); err != nil {
		return "", size, err
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// HashInto writes what r holds into h (a hash under way), stopping when ctx ends, and
// returns how many bytes it wrote.
func HashInto(ctx context.Context, h hash.Hash, r io.Reader) (int64, error) {
	// A pooled buffer: io.Copy would allocate 32 KB per file, and a verify or restore of
	// millions of small files then spends its memory on garbage.
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	return io.CopyBuffer(h, ctxReader{ctx, r}, *buf)
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// SumTree hashes every regular file under dir except backup_metadata.json
// and SHA256SUMS at its top (the metadata is written after the sums and
// holds their checksum). Anything but regular files and directories is an
// error: a backup holds nothing else.
func SumTree(ctx context.Context, dir string) (*SumsWriter, error) {
	sw := NewSumsWriter()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
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
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file (%v)", rel, d.Type())
		case rel == FileMetadata || rel == FileSums:
			return nil
		}
		sum, _, err := HashFile(ctx, p)
		if err != nil {
			return err
		}
		return sw.Add(rel, sum)
	})
	if err != nil {
		return nil, fmt.Errorf("checksum %s: %w", dir, err)
	}
	return sw, nil
}

// ctxReader stops reading once ctx is done, so long copies end promptly.
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

// writeFileSync writes data to name through a temporary file in the same
// folder, syncs it and renames it, so name is either absent, old or whole.
func writeFileSync(name string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// HashFiles hashes the files rels (slash paths under dir) with workers goroutines and calls fn
// with each one's SHA-256 and size, or with the error reading it; calls to fn are serialized.
// An error returned by fn stops the work and is returned (so is ctx's error).
func HashFiles(ctx context.Context, dir string, rels []string, workers int, fn func(rel, sum string, size int64, err error) error) error {
	return HashEach(ctx, dir, min(workers, len(rels)), func(send func(string, struct{}) error) error {
		for _, rel := range rels {
			if err := send(rel, struct{}{}); err != nil {
				return err
			}
		}
		return nil
	}, func(rel string, _ struct{}, sum string, size int64, err error) error { return fn(rel, sum, size, err) })
}

// HashEach hashes the files feed sends (slash paths under dir, each with a value of the
// caller's passed back to fn) with workers goroutines, as they come: the list is never held
// in memory. fn gets each one's SHA-256 and size, or the error reading it; calls to fn are
// serialized. An error returned by feed or fn stops the work and is returned (so is ctx's).
func HashEach[T any](ctx context.Context, dir string, workers int, feed func(send func(rel string, v T) error) error,
	fn func(rel string, v T, sum string, size int64, err error) error) error {
	hash := func(ctx context.Context, rel string) (string, int64, error) {
		return HashFile(ctx, filepath.Join(dir, filepath.FromSlash(rel)))
	}
	return HashEachWith(ctx, hash, workers, feed, fn)
}

// HashEachWith is HashEach with the files read by hash (an object store's, say).
func HashEachWith[T any](ctx context.Context, hash func(ctx context.Context, rel string) (string, int64, error), workers int,
	feed func(send func(rel string, v T) error) error, fn func(rel string, v T, sum string, size int64, err error) error) error {
	type job struct {
		rel string
		v   T
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan job)
	)
	for range max(1, workers) {
		wg.Go(func() {
			for j := range next {
				sum, n, err := hash(ctx, j.rel)
				if ctx.Err() != nil {
					continue // stopped: what is left is not reported
				}
				mu.Lock()
				if ferr := fn(j.rel, j.v, sum, n, err); ferr != nil {
					cancel(ferr)
				}
				mu.Unlock()
			}
		})
	}
	ferr := feed(func(rel string, v T) error {
		select {
		case next <- job{rel, v}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(next)
	wg.Wait()
	if ferr != nil && context.Cause(ctx) == nil {
		return ferr
	}
	return context.Cause(ctx)
}
