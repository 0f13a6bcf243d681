package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// TestFixturePass: the check of a one-transaction load hashes what the load read, as it read
// it (a change to bytes already read is not read again), plus what it did not read from the
// file (a tail after a partial read, bytes added at the end), and a second opening of the
// file, read from its start, is not hashed twice.
func TestFixturePass(t *testing.T) {
	m, ok := platform.Default.Model("books.Book")
	if !ok {
		t.Fatal("no books.Book")
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	orig := []byte(`[{"model": "books.book", "pk": 1, "fields": {"title": "A"}}]` + "\n")
	for _, tt := range []struct {
		name  string
		read  int                          // bytes the load reads (-1: all), in each of its openings
		opens int                          // how many times the load opens the file
		after func(t *testing.T, p string) // what happens to the file once the load read it
		want  []byte
	}{
		{"read in full, then changed", len(orig), 1, func(t *testing.T, p string) { writeAt(t, p, 0, []byte("{")) }, orig},
		{"read in part", 10, 1, func(*testing.T, string) {}, orig},
		{"read twice", -1, 2, func(*testing.T, string) {}, orig},
		{"grown after the read", len(orig), 1, func(t *testing.T, p string) { writeAt(t, p, int64(len(orig)), []byte(" ")) }, append(append([]byte{}, orig...), ' ')},
		{"never opened", 0, 0, func(*testing.T, string) {}, orig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, m.FixtureName())
			if err := os.WriteFile(p, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			pass := newFixturePass(dir, []string{m.FixtureName()})
			fixtures := []database.LoadFixture{{Model: m, Open: func() (io.ReadCloser, error) { return os.Open(p) }}}
			pass.wrap(fixtures)
			for range tt.opens {
				readSome(t, fixtures[0], tt.read)
			}
			tt.after(t, p)
			got, size, err := pass.sum(context.Background(), m.FixtureName())
			if err != nil || got != sum(tt.want) || size != int64(len(tt.want)) {
				t.Fatalf("sum %s, size %d, err %v; want %s, %d", got, size, err, sum(tt.want), len(tt.want))
			}
		})
	}
}

// readSome reads n bytes of the fixture (all of it when n < 0), as a load would, and closes it.
func readSome(t *testing.T, f database.LoadFixture, n int) {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n < 0 {
		_, err = io.ReadAll(rc)
	} else {
		_, err = io.ReadFull(rc, make([]byte, n))
	}
	if err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, p string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestLoadFailedWording: a failed load says "unchanged" only when nothing was committed; a
// commit whose answer was lost says the target may hold either; a half-restored parallel load
// says so.
func TestLoadFailedWording(t *testing.T) {
	tests := []struct {
		err  error
		want string
		not  string
	}{
		{errors.New("load books.book: row 3: bad value"), "database unchanged", ""},
		{fmt.Errorf("load: commit: %w: connection reset", database.ErrCommitUnknown), "may hold the backup's rows or the old ones", "unchanged"},
		{&database.HalfRestoredError{Err: errors.New("load books.book: commit")}, "restore: ", "unchanged"},
	}
	for _, tt := range tests {
		got := loadFailed(tt.err).Error()
		if !strings.Contains(got, tt.want) || (tt.not != "" && strings.Contains(got, tt.not)) {
			t.Errorf("loadFailed(%v) = %q; want it to say %q and not %q", tt.err, got, tt.want, tt.not)
		}
	}
}
