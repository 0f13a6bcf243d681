package layout

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/messages"
)

// indexEntries are a folder backup's files as its copy tasks report them.
var indexEntries = []messages.FileEntry{
	{Key: "images/b.png", Path: "files/images/b.png", Size: 5, SHA256: strings.Repeat("b", 64), Mode: 0o644, ModTime: 1700000000000000002},
	{Key: "content/a\nb.json", Path: "files/content/a\nb.json", Size: 3, SHA256: strings.Repeat("a", 64), Mode: 0o600, ModTime: 1700000000000000001},
	{Key: "content/c.json", Path: "files/content/c.json", Size: 7, SHA256: strings.Repeat("c", 64), Mode: 0o644, ModTime: 1700000000000000003},
}

// TestFileIndexWithoutSumsGolden: an index written with OmitSums carries no sum (golden), and
// SumsJoin gives each entry back the sum its SHA256SUMS lists, escaped names included.
func TestFileIndexWithoutSumsGolden(t *testing.T) {
	w := NewFileIndexWriter("", 1<<20)
	defer w.Close()
	w.OmitSums()
	sums := NewSumsWriter()
	for _, e := range indexEntries {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
		sums.Add(e.Path, e.SHA256)
	}
	sums.Add(FileMetadata, strings.Repeat("d", 64))
	var index bytes.Buffer
	if _, err := w.WriteTo(&index); err != nil {
		t.Fatal(err)
	}
	golden(t, "files_index_nosums.golden.jsonl", index.Bytes())
	manifest, err := sums.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	join := NewSumsJoin(func() (io.ReadCloser, error) {
		opened++
		return io.NopCloser(bytes.NewReader(manifest)), nil
	})
	defer join.Close()
	got := map[string]string{}
	err = ReadFileIndex(bytes.NewReader(index.Bytes()), func(e messages.FileEntry) error {
		if e.SHA256 != "" {
			t.Errorf("%s read with a sum from the index", e.Path)
		}
		if err := join.Fill(&e); err != nil {
			return err
		}
		got[e.Path] = e.SHA256
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range indexEntries {
		if got[e.Path] != e.SHA256 {
			t.Errorf("%q joined with sum %q, want %q", e.Path, got[e.Path], e.SHA256)
		}
	}
	if opened != 1 {
		t.Errorf("SHA256SUMS opened %d times, want once", opened)
	}
}

// TestSumsJoin: an index of the previous format (sums in it) never opens SHA256SUMS; a path
// SHA256SUMS does not list gets no sum; an unsorted manifest or index is an error.
func TestSumsJoin(t *testing.T) {
	line := func(c, p string) string { return strings.Repeat(c, 64) + "  " + p + "\n" }
	tests := []struct {
		name     string
		manifest string
		paths    []string
		want     []string
		err      string
	}{
		{"joined", line("a", "files/a") + line("b", "files/b"), []string{"files/a", "files/b"}, []string{strings.Repeat("a", 64), strings.Repeat("b", 64)}, ""},
		{"not listed", line("a", "files/a") + line("c", "files/c"), []string{"files/b", "files/c", "files/d"}, []string{"", strings.Repeat("c", 64), ""}, ""},
		{"manifest unsorted", line("b", "files/b") + line("a", "files/a"), []string{"files/c"}, nil, "line 2"},
		{"index unsorted", line("a", "files/a") + line("b", "files/b"), []string{"files/b", "files/a"}, nil, "must be sorted"},
		{"manifest damaged", "xyz  files/a\n", []string{"files/a"}, nil, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := NewSumsJoin(func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(tt.manifest)), nil })
			defer j.Close()
			var got []string
			var err error
			for _, p := range tt.paths {
				e := messages.FileEntry{Path: p}
				if err = j.Fill(&e); err != nil {
					break
				}
				got = append(got, e.SHA256)
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("sums %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	t.Run("previous format", func(t *testing.T) {
		j := NewSumsJoin(func() (io.ReadCloser, error) { return nil, errors.New("opened") })
		e := messages.FileEntry{Path: "files/a", SHA256: strings.Repeat("a", 64)}
		if err := j.Fill(&e); err != nil || e.SHA256 != strings.Repeat("a", 64) {
			t.Fatalf("Fill = %v, sum %q", err, e.SHA256)
		}
	})
}

// FuzzSumsJoin: whatever SHA256SUMS holds, the join never panics, and a sum it fills in from
// a well-formed manifest is the one listed for exactly that path.
func FuzzSumsJoin(f *testing.F) {
	f.Add([]byte(strings.Repeat("a", 64)+"  files/a\n"+strings.Repeat("b", 64)+"  files/b\n"), "files/a", "files/b")
	f.Add([]byte("\\"+strings.Repeat("c", 64)+"  files/a\\nb\n"), "files/a\nb", "files/c")
	f.Fuzz(func(t *testing.T, manifest []byte, p1, p2 string) {
		listed, perr := ParseSums(bytes.NewReader(manifest))
		j := NewSumsJoin(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(manifest)), nil })
		defer j.Close()
		for _, p := range []string{p1, p2} {
			e := messages.FileEntry{Path: p}
			if err := j.Fill(&e); err != nil {
				return
			}
			if e.SHA256 != "" && perr == nil && listed[p] != e.SHA256 {
				t.Fatalf("%q joined with %q; the manifest lists %q (%v)", p, e.SHA256, listed[p], perr)
			}
		}
	})
}
