package layout

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// spillPaths returns n distinct paths in a shuffled order, with names whose byte order differs
// from a folder walk's ("a.txt" sorts before "a/b") and names written escaped.
func spillPaths(n int) []string {
	var ps []string
	for i := range n {
		switch i % 4 {
		case 0:
			ps = append(ps, fmt.Sprintf("files/media/d%03d/x.png", i))
		case 1:
			ps = append(ps, fmt.Sprintf("files/media/d%03d.png", i-1))
		case 2:
			ps = append(ps, fmt.Sprintf("files/content/n\\%d\nx", i))
		default:
			ps = append(ps, fmt.Sprintf("db_%d.json", i))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	return ps
}

func fakeSum(p string) string {
	s := sha256.Sum256([]byte(p))
	return hex.EncodeToString(s[:])
}

func TestSpillingSumsWriterMatchesInMemory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		n      int
		budget int
	}{
		{"one run in memory", 50, 1 << 20},
		{"few runs", 1000, 4000},
		{"more runs than one merge takes", 3000, 1000}, // ~300 runs: merged in passes
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mem, sp := NewSumsWriter(), NewSpillingSumsWriter(dir, tc.budget)
			for _, p := range spillPaths(tc.n) {
				for _, w := range []*SumsWriter{mem, sp} {
					if err := w.Add(p, fakeSum(p)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tc.budget < 1<<20 && sp.sorted.Runs() < 2 {
				t.Fatalf("%d runs spilled, want several", sp.sorted.Runs())
			}
			want, err := mem.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			got, err := sp.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("spilled SHA256SUMS differs from the in-memory one:\n%.300q\nwant\n%.300q", got, want)
			}
			if sp.Len() != tc.n {
				t.Errorf("Len = %d, want %d", sp.Len(), tc.n)
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("Close left %d run files", len(left))
			}
		})
	}
}

func TestSpillingSumsWriterDuplicateAcrossRuns(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   int // where the second copy of the path is added
	}{
		{"both on disk", 100},
		{"second in memory", 999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := NewSpillingSumsWriter(t.TempDir(), 2000)
			defer sp.Close()
			dup := "files/media/twice.png"
			for i := range 1000 {
				p := fmt.Sprintf("files/media/%04d", i)
				if i == 0 || i == tc.at {
					p = dup
				}
				if err := sp.Add(p, fakeSum(p)); err != nil {
					t.Fatal(err)
				}
			}
			if sp.sorted.Runs() < 2 {
				t.Fatalf("%d runs spilled, want several", sp.sorted.Runs())
			}
			_, err := sp.Bytes()
			if err == nil || !strings.Contains(err.Error(), dup+" added twice") {
				t.Fatalf("err = %v, want %q added twice", err, dup)
			}
		})
	}
}
