package verify

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/layout/objtest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// storageFiles lists the backup's files under files/ (slash paths), sorted.
func storageFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, layout.FilesDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	slices.Sort(out)
	if len(out) < 8 {
		t.Fatalf("want 8 files or more under files/, found %d", len(out))
	}
	return out
}

// The folder's listing and SHA256SUMS are joined as streams (the listing sorted in runs on
// disk, the budget made tiny so that it spills): files missing, extra and mismatched, spread
// over the order, are each reported by path, and nothing else is.
func TestVerifyJoinReportsEveryDifference(t *testing.T) {
	defer func(b int) { sortBudget = b }(sortBudget)
	sortBudget = 512
	dir := backupCopy(t)
	files := storageFiles(t, dir)
	missing := []string{files[0], files[len(files)-1]}
	mismatched := []string{files[1], files[len(files)/2]}
	extra := []string{"files/0-first-unlisted", "files/zzz/last-unlisted", "zz-top-unlisted"}
	for _, p := range missing {
		os.Remove(filepath.Join(dir, p))
	}
	for _, p := range mismatched {
		editFile(t, dir, p, func(b []byte) []byte { return append(b, 'x') })
	}
	for _, p := range extra {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), []byte("unlisted"), 0o600)
	}
	rep, err := VerifyDir(context.Background(), dir, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range missing {
		want = append(want, p+": listed in SHA256SUMS but missing")
	}
	for _, p := range mismatched {
		want = append(want, p+": checksum mismatch")
	}
	for _, p := range extra {
		want = append(want, p+": not listed in SHA256SUMS")
	}
	all := strings.Join(rep.Problems, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no problem %q in:\n%s", w, all)
		}
	}
	// Besides those: the files check's bytes differ from the metadata's (as many files were
	// added as removed).
	if rep.OK || len(rep.Problems) != len(want)+1 {
		t.Errorf("%d problems, want %d and the files' bytes:\n%s", len(rep.Problems), len(want), all)
	}
}

// A SHA256SUMS not in path order (the Python command's, or one edited by hand) is sorted on
// disk: it verifies as the same lines in order do, and a path listed twice, far apart, is
// found.
func TestVerifyUnsortedSums(t *testing.T) {
	defer func(b int) { sortBudget = b }(sortBudget)
	sortBudget = 512
	dir := pythonBackup(t)
	sw, err := layout.SumTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := sw.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	slices.Reverse(lines)
	os.WriteFile(filepath.Join(dir, layout.FileSums), []byte(fixLines(lines)), 0o644)
	rep := verifyOK(t, dir)
	if rep.Checks[1].Name != CheckChecksums || !strings.HasPrefix(rep.Checks[1].Detail, fmt.Sprintf("%d of %d files listed", len(lines), len(lines))) {
		t.Errorf("checksums check %+v, want all %d files listed", rep.Checks[1], len(lines))
	}
	dup := append(slices.Clone(lines), lines[len(lines)-1])
	os.WriteFile(filepath.Join(dir, layout.FileSums), []byte(fixLines(dup)), 0o644)
	rep, err = VerifyDir(context.Background(), dir, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	first := strings.TrimSpace(lines[len(lines)-1][66:])
	if rep.OK || !strings.Contains(strings.Join(rep.Problems, "\n"), fmt.Sprintf("%q listed twice", first)) {
		t.Errorf("a path listed twice: ok %v, problems %q, want %s named", rep.OK, rep.Problems, first)
	}
}

// fixLines joins SHA256SUMS lines, each ending in a newline.
func fixLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimSuffix(l, "\n") + "\n")
	}
	return b.String()
}

// objectStoreAt is a destination root for object-store backups, on S3 or in a folder.
type objectStoreAt struct {
	root   string
	verify func(t *testing.T, name string) *Report
	put    func(t *testing.T, key string, b []byte)
	del    func(t *testing.T, key string)
}

func objectStores() map[string]func(t *testing.T) objectStoreAt {
	return map[string]func(t *testing.T) objectStoreAt{
		"s3": func(t *testing.T) objectStoreAt {
			s3 := s3test.Start(t, nil, "backups")
			return objectStoreAt{
				root: s3.URL("backups", "nightly", ""),
				verify: func(t *testing.T, name string) *Report {
					t.Helper()
					b, err := coordinator.OpenBackup(context.Background(), s3.URL("backups", "nightly/"+name, ""), t.TempDir())
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					rep, err := VerifyDir(context.Background(), b.Dir, Options{Workers: 2, Objects: b.Root})
					if err != nil {
						t.Fatal(err)
					}
					return rep
				},
				put: func(t *testing.T, key string, b []byte) { putObject(t, s3.URL("backups", "nightly", ""), key, b) },
				del: func(t *testing.T, key string) {
					if _, err := s3.Backend.DeleteObject("backups", "nightly/"+key); err != nil {
						t.Fatal(err)
					}
				},
			}
		},
		"folder": func(t *testing.T) objectStoreAt {
			root := t.TempDir()
			return objectStoreAt{
				root: root,
				verify: func(t *testing.T, name string) *Report {
					t.Helper()
					rep, err := Verify(context.Background(), filepath.Join(root, name), Options{Workers: 2})
					if err != nil {
						t.Fatal(err)
					}
					return rep
				},
				put: func(t *testing.T, key string, b []byte) { os.WriteFile(filepath.Join(root, key), b, 0o600) },
				del: func(t *testing.T, key string) {
					if err := os.Remove(filepath.Join(root, key)); err != nil {
						t.Fatal(err)
					}
				},
			}
		},
	}
}

// An object-store backup verifies OK, with its files counted from the index; a missing,
// corrupt or truncated object, and an index that lost a file, are each reported naming the
// file's path.
func TestVerifyObjectStore(t *testing.T) {
	src, _ := sharedBackup(t)
	damages := []struct {
		name  string
		apply func(t *testing.T, d objectStoreAt, name string, victim messages.FileEntry)
		want  []string
	}{
		{"clean", nil, nil},
		{"missing object", func(t *testing.T, d objectStoreAt, _ string, v messages.FileEntry) {
			d.del(t, layout.ObjectKey(v.SHA256))
		}, []string{"%s: its object %s is missing from the object store"}},
		{"corrupt object", func(t *testing.T, d objectStoreAt, _ string, v messages.FileEntry) {
			d.put(t, layout.ObjectKey(v.SHA256), bytes.Repeat([]byte{'x'}, int(v.Size)))
		}, []string{"%s: checksum mismatch: its object %s has sha256"}},
		{"truncated object", func(t *testing.T, d objectStoreAt, _ string, v messages.FileEntry) {
			d.put(t, layout.ObjectKey(v.SHA256), []byte("short"))
		}, []string{"%s: its object %s has 5 bytes"}},
		{"file dropped from the index", func(t *testing.T, d objectStoreAt, name string, v messages.FileEntry) {
			d.put(t, name+"/"+layout.FileIndex, indexWithout(t, d, name, v.Path))
		}, []string{"%s: listed in SHA256SUMS but not in files_index.jsonl", "files_index.jsonl: checksum mismatch"}},
	}
	for store, at := range objectStores() {
		for _, dmg := range damages {
			t.Run(store+"/"+dmg.name, func(t *testing.T) {
				d := at(t)
				name, index := objtest.Convert(t, src, d.root)
				victim := index[len(index)/2]
				if dmg.apply != nil {
					dmg.apply(t, d, name, victim)
				}
				rep := d.verify(t, name)
				if dmg.apply == nil {
					if !rep.OK || !slices.Contains(checkNames(rep), CheckObjects) || rep.Files != int64(len(index)) {
						t.Fatalf("clean object-store backup: ok %v, checks %+v, %d files (index %d), problems %q", rep.OK, rep.Checks, rep.Files, len(index), rep.Problems)
					}
					return
				}
				all := strings.Join(rep.Problems, "\n")
				for _, w := range dmg.want {
					if strings.Count(w, "%s") == 2 {
						w = fmt.Sprintf(w, victim.Path, layout.ObjectKey(victim.SHA256))
					} else if strings.Contains(w, "%s") {
						w = fmt.Sprintf(w, victim.Path)
					}
					if !strings.Contains(all, w) {
						t.Errorf("no problem %q in:\n%s", w, all)
					}
				}
				if rep.OK {
					t.Error("reported OK")
				}
			})
		}
	}
}

// indexWithout returns the backup's file index without the entry of path p.
func indexWithout(t *testing.T, d objectStoreAt, name, p string) []byte {
	t.Helper()
	b, err := storage.Open(context.Background(), d.root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, _, err := b.Open(context.Background(), name+"/"+layout.FileIndex)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out bytes.Buffer
	w := messages.NewFileListWriter(&out)
	err = messages.ReadFileList(r, func(e messages.FileEntry) error {
		if e.Path == p {
			return nil
		}
		return w.Add(e)
	})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// putObject replaces an object through the storage layer, with the checksum S3 keeps for it.
func putObject(t *testing.T, root, key string, data []byte) {
	t.Helper()
	b, err := storage.Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Put(context.Background(), key, bytes.NewReader(data), storage.Object{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
}
