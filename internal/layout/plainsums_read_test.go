package layout_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/layout"
)

func sumOf(c byte) string { return strings.Repeat(string(c), 64) }

// writeSegment encrypts lines to k as the segment name under dir.
func writeSegment(t *testing.T, dir, name string, k enctest.Key, lines string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	os.MkdirAll(filepath.Dir(p), 0o700)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := k.Recipients.Encrypt(f)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(lines))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// The segments merge into one stream in stored-path order (path + .age, which is not the
// paths' order), each path with the sum of the newest segment listing it; the fixtures are in
// Top. The merge spills to disk with a tiny budget too.
func TestPlainSumsMergeNewestWins(t *testing.T) {
	dir, k := t.TempDir(), enctest.NewKey(t)
	writeSegment(t, dir, "plainsums/r1.age", k,
		sumOf('1')+"  db_books_book.json\n"+sumOf('1')+"  files/a\n"+sumOf('1')+"  files/a-x\n"+sumOf('1')+"  files/gone\n")
	writeSegment(t, dir, "plainsums/r2.age", k,
		sumOf('2')+"  db_books_book.json\n"+sumOf('2')+"  files/a-x\n"+sumOf('2')+"  files/b\n")
	ps, err := layout.OpenPlainSums(context.Background(), dir, []string{"plainsums/r1.age", "plainsums/r2.age"}, k.Identities, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	var got []string
	if err := ps.Each(func(stored, sum string) error { got = append(got, stored+"="+sum[:1]); return nil }); err != nil {
		t.Fatal(err)
	}
	want := "db_books_book.json.age=2 files/a-x.age=2 files/a.age=1 files/b.age=2 files/gone.age=1"
	if strings.Join(got, " ") != want {
		t.Fatalf("merged %v, want %s", got, want)
	}
	if ps.Top["db_books_book.json"] != sumOf('2') || len(ps.Top) != 1 {
		t.Fatalf("top %v", ps.Top)
	}
}

// A segment that is unsorted, lists a path twice, holds a bad line, is damaged, or opens
// with none of the keys is an error naming it; the wrong key is ErrWrongKey.
func TestPlainSumsBadSegment(t *testing.T) {
	k, other := enctest.NewKey(t), enctest.NewKey(t)
	tests := []struct {
		name    string
		lines   string
		ids     *encryption.Identities
		damage  func(p string)
		want    string
		wantErr error
	}{
		{"unsorted", sumOf('a') + "  files/b\n" + sumOf('a') + "  files/a\n", k.Identities, nil, "not sorted", nil},
		{"twice", sumOf('a') + "  files/a\n" + sumOf('a') + "  files/a\n", k.Identities, nil, "listed twice", nil},
		{"bad line", "xyz  files/a\n", k.Identities, nil, "line 1", nil},
		{"escaping path", sumOf('a') + "  ../etc/passwd\n", k.Identities, nil, "line 1", nil},
		{"wrong key", sumOf('a') + "  files/a\n", other.Identities, nil, "", encryption.ErrWrongKey},
		{"truncated", manyLines(2000), k.Identities, func(p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-100], 0o600)
		}, "", encryption.ErrDamaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSegment(t, dir, "plainsums/run.age", k, tt.lines)
			if tt.damage != nil {
				tt.damage(filepath.Join(dir, "plainsums", "run.age"))
			}
			ps, err := layout.OpenPlainSums(context.Background(), dir, []string{"plainsums/run.age"}, tt.ids, "")
			if err == nil {
				ps.Close()
				t.Fatal("a bad segment was read")
			}
			if !strings.Contains(err.Error(), "plainsums/run.age") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want one naming the segment and %q", err, tt.want)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// A segment name from the metadata that leaves the backup, or none at all, is refused.
func TestPlainSumsBadNames(t *testing.T) {
	k := enctest.NewKey(t)
	for _, segs := range [][]string{nil, {"../outside.age"}, {"plainsums/run.txt"}, {"/etc/x.age"}} {
		if ps, err := layout.OpenPlainSums(context.Background(), t.TempDir(), segs, k.Identities, ""); err == nil {
			ps.Close()
			t.Fatalf("segments %q accepted", segs)
		}
	}
}

// manyLines is a sorted segment of n files, several age chunks long.
func manyLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s  files/f%05d\n", sumOf('a'), i)
	}
	return b.String()
}

// The segment parser never panics, and what it accepts is sorted, clean and hex.
func FuzzReadPlainSegment(f *testing.F) {
	f.Add([]byte(sumOf('a') + "  files/a\n" + sumOf('b') + "  files/b\n"))
	f.Add([]byte("\\" + sumOf('c') + "  files/new\\nline\n"))
	f.Add([]byte(sumOf('a') + " *files/a\r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		prev := ""
		err := layout.ReadPlainSegment(strings.NewReader(string(data)), "seg", func(p, sum string) error {
			if prev != "" && p <= prev {
				t.Fatalf("%q accepted after %q", p, prev)
			}
			if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
				t.Fatalf("accepted sum %q path %q", sum, p)
			}
			prev = p
			return nil
		})
		if err != nil && !strings.Contains(err.Error(), "seg") {
			t.Fatalf("error %q does not name the segment", err)
		}
	})
}

// DecryptAge writes and hashes the plaintext of an age file of several chunks, and leaves the
// stored sum to age's authentication: a file flipped, cut at a chunk's end or inside one,
// extended, or encrypted to another key does not decrypt (AgeSums.Decrypt), and none of it is
// an error of reading.
func TestDecryptAge(t *testing.T) {
	k, other := enctest.NewKey(t), enctest.NewKey(t)
	plain := make([]byte, 300<<10+123) // five chunks of 64 KiB, the last short
	for i := range plain {
		plain[i] = byte(i * 7)
	}
	good := enctest.Seal(t, plain, k)
	var sink bytes.Buffer
	s, err := layout.DecryptAge(context.Background(), bytes.NewReader(good), k.Identities, &sink)
	if err != nil || s.Decrypt != nil {
		t.Fatalf("decrypt: %v, %v", err, s.Decrypt)
	}
	want := sha256.Sum256(plain)
	if s.Plain != hex.EncodeToString(want[:]) || s.PlainSize != int64(len(plain)) || s.Stored != "" {
		t.Errorf("sums %+v, want plaintext %x (%d bytes) and no stored sum", s, want, len(plain))
	}
	if !bytes.Equal(sink.Bytes(), plain) {
		t.Errorf("the sink got %d bytes that are not the plaintext", sink.Len())
	}
	damaged := map[string][]byte{
		"flipped":            append(slices.Clone(good[:len(good)-100]), append([]byte{good[len(good)-100] ^ 1}, good[len(good)-99:]...)...),
		"cut inside a chunk": good[:len(good)-10],
		"cut at a chunk end": good[:len(good)-(123+16)],
		"extended":           append(slices.Clone(good), 0),
		"another key":        enctest.Seal(t, plain, other),
	}
	for name, data := range damaged {
		t.Run(name, func(t *testing.T) {
			s, err := layout.DecryptAge(context.Background(), bytes.NewReader(data), k.Identities, io.Discard)
			if err != nil {
				t.Fatalf("a damaged file is an error of reading: %v", err)
			}
			if s.Decrypt == nil || s.Plain != "" {
				t.Fatalf("%s: decrypted (%+v)", name, s)
			}
		})
	}
}
