package pipeline_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
)

// TestIncrementalIndexSumsFromManifest: a backup folder's file index leaves the sums out
// (SHA256SUMS lists them, in the same order), and such a base is used as one: its unchanged
// files are linked with the sums its SHA256SUMS gives. A base of the previous format, whose
// index carries every sum, is used the same way.
func TestIncrementalIndexSumsFromManifest(t *testing.T) {
	tests := []struct {
		name   string
		adjust func(t *testing.T, backup string)
	}{
		{"index without sums", func(*testing.T, string) {}},
		{"previous format: sums in the index", putSumsInIndex},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newIncStorage(t)
			s.put("content/a.json", "alpha")
			s.put("content/c.json", "charlie")
			s.put("images/b.png", "bravo")
			c := filesSession(t, s)
			dir := t.TempDir()
			first := filesBackup(t, c, s, dir, withFileIndex)
			for _, e := range readIndex(t, first.Path) {
				if e.SHA256 != "" {
					t.Fatalf("the index lists %s with its sum %s: SHA256SUMS has it", e.Path, e.SHA256)
				}
			}
			tc.adjust(t, first.Path)
			s.put("images/b.png", "bravo, changed")
			second := filesBackup(t, c, s, dir, nil)
			if second.Base != filepath.Base(first.Path) || second.Reused.Files != 2 || second.New.Files != 1 {
				t.Fatalf("base %q new %+v reused %+v; want the first as base, two reused", second.Base, second.New, second.Reused)
			}
			for _, key := range []string{"content/a.json", "content/c.json"} {
				if !sameInode(t, first.Path, second.Path, key) {
					t.Fatalf("%s is not linked to the base's copy", key)
				}
			}
			checkBackupIntact(t, second.Path)
		})
	}
}

// readIndex reads a backup's file index as it is stored.
func readIndex(t *testing.T, backup string) []messages.FileEntry {
	t.Helper()
	f, err := os.Open(filepath.Join(backup, layout.FileIndexGz))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var es []messages.FileEntry
	if err := layout.ReadFileIndex(f, func(e messages.FileEntry) error { es = append(es, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		t.Fatal("empty index")
	}
	return es
}

// putSumsInIndex rewrites a backup's index as the previous version wrote it, each entry
// with its sum, and signs it again (its SHA256SUMS line, the metadata's manifest sum).
func putSumsInIndex(t *testing.T, backup string) {
	t.Helper()
	sumsPath := filepath.Join(backup, layout.FileSums)
	manifest, err := os.ReadFile(sumsPath)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := layout.ParseSums(bytes.NewReader(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	w := messages.NewFileListWriter(&plain)
	for _, e := range readIndex(t, backup) {
		e.SHA256 = sums[e.Path]
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if !strings.Contains(plain.String(), `"h":"`) {
		t.Fatal("no sums written into the index")
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain.Bytes())
	zw.Close()
	if err := os.WriteFile(filepath.Join(backup, layout.FileIndexGz), z.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(z.Bytes())
	lines := strings.Split(string(manifest), "\n")
	for i, l := range lines {
		if strings.HasSuffix(l, "  "+layout.FileIndexGz) {
			lines[i] = hex.EncodeToString(h[:]) + "  " + layout.FileIndexGz
		}
	}
	manifest = []byte(strings.Join(lines, "\n"))
	if err := os.WriteFile(sumsPath, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	meta := readMetadata(t, backup)
	ms := sha256.Sum256(manifest)
	meta.ManifestSHA256 = hex.EncodeToString(ms[:])
	if err := layout.WriteMetadata(backup, meta); err != nil {
		t.Fatal(err)
	}
}
