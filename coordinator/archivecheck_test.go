package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// The check of an archive being copied: every entry listed once with its sum, every listed
// path present once; in memory or spilled to sorted runs on disk alike.
func TestArchiveCheck(t *testing.T) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	type entry struct{ rel, content string }
	files := func(n int) []entry {
		var es []entry
		for i := range n {
			es = append(es, entry{fmt.Sprintf("files/f%05d", i), fmt.Sprint("content ", i)})
		}
		return es
	}
	manifest := func(es []entry) string {
		var b strings.Builder
		for _, e := range es {
			fmt.Fprintf(&b, "%s  %s\n", sum(e.content), e.rel)
		}
		return b.String()
	}
	good := files(300)
	tests := []struct {
		name     string
		listed   string
		archived []entry
		want     string // in the error; "" for none
		count    int64  // files the metadata records beyond those listed
	}{
		{"good", manifest(good), good, "", 0},
		{"missing entry", manifest(good), good[1:], "files/f00000 is listed in SHA256SUMS but not in the archive", 0},
		{"entry twice", manifest(good), append(good[:len(good):len(good)], good[7]), "files/f00007 is in the archive twice", 0},
		{"listed twice", manifest(append(good[:len(good):len(good)], good[9])), good, "files/f00009 is listed twice", 0},
		{"changed content", manifest(good), append([]entry{{"files/f00000", "other"}}, good[1:]...), "files/f00000 has sha256 " + sum("other"), 0},
		{"empty name", manifest(good), append(good[:len(good):len(good)], entry{"", "x"}), " is in the archive but not in SHA256SUMS", 0},
		{"manifest cut short", manifest(good[1:]), good[1:], "lists 299 files under files/ but backup_metadata.json says 300", 1},
	}
	for _, spill := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/spill=%v", tt.name, spill), func(t *testing.T) {
				if spill {
					t.Setenv("WNB_TEST_SUMS_MEMORY", "2000") // a run every few dozen records
				}
				a, err := newArchiveCheck()
				if err != nil {
					t.Fatal(err)
				}
				defer a.close()
				meta := &layout.Metadata{ManifestSHA256: sum(tt.listed)}
				meta.Files.Count = int64(strings.Count(tt.listed, "\n")) + tt.count
				a.meta = meta
				if err := a.entry(layout.FileSums, strings.NewReader(tt.listed)); err != nil {
					t.Fatal(err)
				}
				err = nil
				for _, e := range tt.archived {
					if e.rel == "" {
						a.meta = nil // an older layout: the entry is not refused at its header
						err = a.entry(e.rel, strings.NewReader(e.content))
						a.meta = meta
					} else {
						err = a.entry(e.rel, strings.NewReader(e.content))
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if spill && !a.sums.Spilled() {
					t.Fatal("nothing was spilled to disk")
				}
				err = a.check()
				switch {
				case tt.want == "" && err != nil:
					t.Fatalf("check: %v", err)
				case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
					t.Fatalf("check: %v, want an error naming %q", err, tt.want)
				}
			})
		}
	}
}
