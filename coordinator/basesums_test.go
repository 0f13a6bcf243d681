package coordinator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// selfIndexedBase writes a self-indexed base folder "b" under a new destination: the copies
// of files (path → content), and SHA256SUMS with manifest (its lines, as given).
func selfIndexedBase(t *testing.T, files map[string]string, manifest string, changed []string) *baseBackup {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, "b", filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "b", layout.FileSums), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := storage.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	m := &layout.Metadata{Files: layout.FilesSummary{SelfIndexed: true, ChangedDuringBackup: changed}}
	return &baseBackup{name: "b", meta: m, root: root}
}

// The base's manifest is read in path order: a listed file gives its sum, and may be reused
// unless it changed as the base read it; the copies are not looked at (a copy gone or not a
// regular file is the worker's to find as it links). A path the manifest does not list, or
// that is not under files/, is not found.
func TestBaseSums(t *testing.T) {
	sumA, sumB, sumC, sumF := hexSum([]byte("a")), hexSum([]byte("bb")), hexSum([]byte("c")), hexSum([]byte("fixture"))
	manifest := sumF + "  db_books.json\n" + sumA + "  files/a\n" + sumB + "  files/b/x\n" + sumC + "  files/c\n" + hexSum(nil) + "  files/gone\n"
	base := selfIndexedBase(t, map[string]string{"files/a": "a", "files/b/x": "bb", "files/c": "c", "db_books.json": "fixture"}, manifest, []string{"files/c"})
	s := startBaseSums(context.Background(), base)
	defer s.stop()
	r := s.open()
	for _, c := range []struct {
		path      string
		found, ok bool
		sum       string
	}{
		{path: "db_books.json"},
		{path: "files/a", found: true, ok: true, sum: sumA},
		{path: "files/aa"},
		{path: "files/b/x", found: true, ok: true, sum: sumB},
		{path: "files/c", found: true, sum: sumC},
		{path: "files/gone", found: true, ok: true, sum: hexSum(nil)},
		{path: "files/z"},
	} {
		rec, found, err := r.find(c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if found != c.found || rec.ok != c.ok || rec.sum != c.sum {
			t.Errorf("%s: found %v, record %+v; want found %v, %+v", c.path, found, rec, c.found, c)
		}
	}
	if _, _, err := r.find("files/a"); err == nil {
		t.Error("a path asked for after a later one was accepted")
	}
}

// A manifest out of order (which this tool never writes) is an error, not a base whose
// files would be silently missed by the forward join.
func TestBaseSumsUnsortedManifest(t *testing.T) {
	manifest := hexSum([]byte("b")) + "  files/b\n" + hexSum([]byte("a")) + "  files/a\n"
	base := selfIndexedBase(t, map[string]string{"files/a": "a", "files/b": "b"}, manifest, nil)
	s := startBaseSums(context.Background(), base)
	defer s.stop()
	if _, _, err := s.open().find("files/c"); err == nil || !strings.Contains(err.Error(), "is not after") {
		t.Fatalf("unsorted manifest: %v, want an error naming the order", err)
	}
}

// A base with a file index is read from it: nothing is gathered.
func TestBaseSumsIndexedBase(t *testing.T) {
	base := &baseBackup{name: "b", meta: &layout.Metadata{Files: layout.FilesSummary{Index: layout.FileIndexGz}}}
	if s := startBaseSums(context.Background(), base); s != nil {
		s.stop()
		t.Fatal("a base with an index had its manifest read for its sums")
	}
}

// A base of more copies than one batch holds is read whole, in order, across batches; and a
// join that stops reading early does not leave the gathering blocked: stop returns.
func TestBaseSumsBatches(t *testing.T) {
	n := 3*sumBatch + 7
	files := map[string]string{}
	var manifest strings.Builder
	for i := range n {
		p := fmt.Sprintf("files/%04d/f", i)
		files[p] = fmt.Sprint(i)
		manifest.WriteString(hexSum([]byte(fmt.Sprint(i))) + "  " + p + "\n")
	}
	base := selfIndexedBase(t, files, manifest.String(), nil)

	s := startBaseSums(context.Background(), base)
	r := s.open()
	for i := range n {
		p := fmt.Sprintf("files/%04d/f", i)
		rec, found, err := r.find(p)
		if err != nil || !found || !rec.ok || rec.sum != hexSum([]byte(fmt.Sprint(i))) {
			t.Fatalf("%s: found %v, %+v, %v", p, found, rec, err)
		}
	}
	s.stop()
	if s.files != n {
		t.Errorf("gathered %d files, want %d", s.files, n)
	}

	s = startBaseSums(context.Background(), base)
	if _, _, err := s.open().find("files/0000/f"); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { s.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return while the gathering waited for the join to read")
	}
}

// A self-indexed base's file is a candidate for reuse only when it was modified before the
// base started; with --checksum (since 0) whatever its time, as the content decides. The
// entry carries the listed file's own size and time, which the worker checks on the copy.
func TestFindCopySince(t *testing.T) {
	sumA := hexSum([]byte("a"))
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name      string
		checksum  bool
		modTime   time.Time
		wantFound bool
	}{
		{"modified before the base started", false, start.Add(-time.Nanosecond), true},
		{"modified as the base started", false, start, false},
		{"modified after", false, start.Add(time.Hour), false},
		{"unknown time", false, time.Time{}, false},
		{"after, with --checksum", true, start.Add(time.Hour), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := selfIndexedBase(t, map[string]string{"files/a": "a"}, sumA+"  files/a\n", nil)
			base.meta.BackupTimestamp = start
			inc := incremental{base: base, checksum: c.checksum, sums: startBaseSums(context.Background(), base)}
			defer inc.sums.stop()
			idx, err := openBaseIndex(context.Background(), inc, "")
			if err != nil {
				t.Fatal(err)
			}
			s := messages.FileEntry{Key: "a", Path: "files/a", Size: 1}
			if !c.modTime.IsZero() {
				s.ModTime = c.modTime.UnixNano()
			}
			b, found, err := idx.find(s)
			if err != nil {
				t.Fatal(err)
			}
			if found != c.wantFound {
				t.Fatalf("found %v, want %v", found, c.wantFound)
			}
			if found && (b.SHA256 != sumA || b.Size != s.Size || b.ModTime != s.ModTime) {
				t.Errorf("entry %+v: want the base's sum with the listed size and time", b)
			}
		})
	}
}
