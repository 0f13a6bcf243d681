package layout

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/storage"
)

// PlainSums is an encrypted backup's plaintext manifest, merged from its segments
// (Encryption.PlainSums, oldest first): for each path, the plaintext SHA-256 the newest segment
// listing it gives. The lines go through an external sort, so memory does not grow with the
// number of files; Top keeps those outside files/ (the fixtures), a handful.
type PlainSums struct {
	sorted *extsort.Sorter
	// Top maps the paths outside files/ (without .age) to their plaintext sums.
	Top map[string]string
}

// plainSortBudget is the memory the merge keeps before it spills a sorted run.
const plainSortBudget = 8 << 20

// OpenPlainSums decrypts every segment (slash paths under dir) with ids and merges them;
// spill, an existing folder, receives the sort's runs ("" keeps them in memory). A segment
// that cannot be decrypted (ErrWrongKey, ErrDamaged are wrapped), is not sorted by path,
// lists a path twice or holds a malformed line is an error naming it. Close removes the runs.
func OpenPlainSums(ctx context.Context, dir string, segments []string, ids *encryption.Identities, spill string) (*PlainSums, error) {
	if len(segments) == 0 {
		return nil, fmt.Errorf("%s lists no plain_sums segment: the plaintext of this encrypted backup cannot be checked", FileMetadata)
	}
	ps := &PlainSums{sorted: extsort.New(spill, plainSortBudget), Top: map[string]string{}}
	for i, name := range segments {
		if err := ps.addSegment(ctx, dir, name, uint32(i), ids); err != nil {
			ps.Close()
			return nil, err
		}
	}
	return ps, nil
}

// addSegment reads one segment into the sort, each record tagged with the segment's age.
func (ps *PlainSums) addSegment(ctx context.Context, dir, name string, seq uint32, ids *encryption.Identities) error {
	if err := checkSumPath(name); err != nil || !strings.HasSuffix(name, encryption.Ext) {
		return fmt.Errorf("%s: plain_sums segment %q: not a path of an .age file inside the backup", FileMetadata, name)
	}
	f, err := storage.OpenRegular(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return fmt.Errorf("plain sums segment %s: %w", name, err)
	}
	defer f.Close()
	r, err := ids.Decrypt(f)
	if err != nil {
		return fmt.Errorf("plain sums segment %s: %w", name, err)
	}
	return ReadPlainSegment(ctxReader{ctx, r}, name, func(p, sum string) error {
		if !strings.HasPrefix(p, FilesDir+"/") {
			ps.Top[p] = sum // later segments are newer: the last one wins
		}
		v := binary.BigEndian.AppendUint32(nil, seq)
		return ps.sorted.Add(p+encryption.Ext, append(v, sum...))
	})
}

// ReadPlainSegment parses a decrypted segment (coreutils "<sum>  <path>" lines, strictly
// sorted by path in byte order) from r, calling fn with each path and sum. Errors name the
// segment and the line.
func ReadPlainSegment(r io.Reader, name string, fn func(p, sum string) error) error {
	// A read error (a damaged segment) comes before the torn line it leaves.
	rr := &readErr{r: r}
	sc := bufio.NewScanner(rr)
	sc.Buffer(make([]byte, 0, 4096), maxSumsLine)
	prev := ""
	for line := 1; sc.Scan(); line++ {
		p, sum, err := parseSumLine(sc.Text())
		if rr.err != nil && rr.err != io.EOF {
			return fmt.Errorf("plain sums segment %s: %w", name, rr.err)
		}
		if err != nil {
			return fmt.Errorf("plain sums segment %s line %d: %w", name, line, err)
		}
		if line > 1 && p <= prev {
			return fmt.Errorf("plain sums segment %s line %d: %q comes after %q: not sorted by path, or listed twice", name, line, p, prev)
		}
		prev = p
		if err := fn(p, sum); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("plain sums segment %s: line longer than %d bytes", name, maxSumsLine)
		}
		return fmt.Errorf("plain sums segment %s: %w", name, err)
	}
	return nil
}

// readErr keeps the first error of its reader.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// Each calls fn with every path as it is stored (with .age) and its plaintext sum from the
// newest segment listing it, in the order of the stored paths (SHA256SUMS's order).
func (ps *PlainSums) Each(fn func(stored, sum string) error) error {
	var cur string
	var best []byte
	have := false
	flush := func() error {
		if !have {
			return nil
		}
		return fn(cur, string(best[4:]))
	}
	err := ps.sorted.Each(func(k string, v []byte) error {
		if have && k == cur {
			if binary.BigEndian.Uint32(v) > binary.BigEndian.Uint32(best) {
				best = v
			}
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		cur, best, have = k, v, true
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// Close removes the sort's runs.
func (ps *PlainSums) Close() error {
	if ps == nil {
		return nil
	}
	return ps.sorted.Close()
}

// AgeSums is what reading one age file found: the SHA-256 and size of its bytes as stored and
// of its plaintext, or in Decrypt why it could not be decrypted (encryption.ErrWrongKey,
// ErrDamaged), in which case Plain is empty.
type AgeSums struct {
	Stored, Plain         string
	StoredSize, PlainSize int64
	Decrypt               error
}

// HashAge reads the age file r to its end, hashing its bytes and, decrypted with ids, its
// plaintext, which it also writes to sink if set. The error is one of reading r or writing
// sink (or ctx's); a file that does not decrypt is not an error but AgeSums.Decrypt, so that
// the caller can tell a changed file (its stored sum differs) from a wrong key.
func HashAge(ctx context.Context, r io.Reader, ids *encryption.Identities, sink io.Writer) (AgeSums, error) {
	var out AgeSums
	stored, plain := sha256.New(), sha256.New()
	counted := &countingWriter{w: stored}
	tee := io.TeeReader(ctxReader{ctx, r}, counted)
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	pr, err := ids.Decrypt(tee)
	if err == nil {
		to := io.Writer(plain)
		if sink != nil {
			to = io.MultiWriter(plain, sinkWriter{sink})
		}
		out.PlainSize, err = io.CopyBuffer(to, pr, *buf)
		var we *writeError
		if errors.As(err, &we) {
			return out, we.err
		}
	}
	if err != nil {
		out.Decrypt = err
	}
	// What the decryption left unread still counts in the stored sum.
	if _, err := io.CopyBuffer(io.Discard, tee, *buf); err != nil {
		return out, err
	}
	if cerr := ctx.Err(); cerr != nil {
		return out, cerr
	}
	out.Stored, out.StoredSize = hex.EncodeToString(stored.Sum(nil)), counted.n
	if out.Decrypt == nil {
		out.Plain = hex.EncodeToString(plain.Sum(nil))
	}
	return out, nil
}

// DecryptAge reads the age file r, decrypted with ids, into sink if set, hashing its
// plaintext only: AgeSums.Stored stays empty. It is HashAge for a reader that checks the
// plaintext against a trusted sum (the backup's manifest of plaintext sums): age's STREAM
// authenticates every byte of the payload, its end and that nothing follows, so a changed,
// truncated or extended file fails to decrypt (AgeSums.Decrypt) and another file's ciphertext
// has another plaintext sum, and hashing the stored bytes too would only double the work.
// The plaintext goes through one large buffer: few, large writes into sink.
func DecryptAge(ctx context.Context, r io.Reader, ids *encryption.Identities, sink io.Writer) (AgeSums, error) {
	var out AgeSums
	pr, err := ids.Decrypt(ctxReader{ctx, r})
	if err != nil {
		out.Decrypt = err
		return out, ctx.Err()
	}
	plain := sha256.New()
	buf := decryptBuffers.Get().(*[]byte)
	defer decryptBuffers.Put(buf)
	for {
		n, rerr := io.ReadFull(pr, *buf)
		plain.Write((*buf)[:n])
		if sink != nil && n > 0 {
			if _, err := sink.Write((*buf)[:n]); err != nil {
				return out, err
			}
		}
		out.PlainSize += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			if cerr := ctx.Err(); cerr != nil {
				return out, cerr
			}
			out.Decrypt = rerr
			return out, nil
		}
	}
	out.Plain = hex.EncodeToString(plain.Sum(nil))
	return out, nil
}

// decryptBuffers are DecryptAge's plaintext buffers: four of age's 64 KiB chunks each.
var decryptBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// writeError marks an error of the sink, which is not the file's fault.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

type sinkWriter struct{ w io.Writer }

func (s sinkWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// PlainNames is a copy of the summary whose recorded modes name the files as they are
// restored (without .age), whichever way an encrypted backup recorded them.
func (f *FilesSummary) PlainNames() *FilesSummary {
	c := *f
	c.Modes = make(map[string][]string, len(f.Modes))
	for m, paths := range f.Modes {
		for _, p := range paths {
			c.Modes[m] = append(c.Modes[m], strings.TrimSuffix(p, encryption.Ext))
		}
	}
	return &c
}
