package layout

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/messages"
)

// The file index comes back sorted by path, whole (a name that is not UTF-8 byte for byte),
// whatever the order entries were added in and however many runs were spilled.
func TestFileIndexRoundTrip(t *testing.T) {
	entries := []messages.FileEntry{
		{Path: "files/media/b.png", Key: "media/b.png", Size: 3, ModTime: 17, SHA256: strings.Repeat("b", 64), Mode: 0o640},
		{Path: "files/a\xff.txt", Key: "a\xff.txt", Size: 1, ETag: "e1", SHA256: strings.Repeat("a", 64), Mode: 0o644},
		{Path: "files/media/a/c.png", Key: "media/a/c.png", Size: 2, ModTime: 5, SHA256: strings.Repeat("c", 64), Changed: true, Reuse: "x"},
	}
	for _, budget := range []int{1, 1 << 20} {
		w := NewFileIndexWriter(t.TempDir(), budget)
		for _, e := range entries {
			if err := w.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		w.Close()
		var got []messages.FileEntry
		if err := ReadFileIndex(&buf, func(e messages.FileEntry) error { got = append(got, e); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []messages.FileEntry{entries[1], entries[2], entries[0]}
		want[1].Changed, want[1].Reuse = false, "" // not kept in the index
		if len(got) != len(want) {
			t.Fatalf("budget %d: read %d entries, want %d", budget, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("budget %d: entry %d is %+v, want %+v", budget, i, got[i], want[i])
			}
		}
	}
}

// The index is written gzipped, smaller than its JSON lines, and read back whole; a reader
// takes the uncompressed form of earlier versions too, and a damaged gzip stream is an error.
func TestFileIndexGzip(t *testing.T) {
	w := NewFileIndexWriter("", 1<<20)
	defer w.Close()
	for i := range 1000 {
		k := fmt.Sprintf("media/%03d/f%06d.bin", i/100, i)
		if err := w.Add(messages.FileEntry{Path: "files/" + k, Key: k, Size: int64(i), ModTime: int64(i) << 20, SHA256: fmt.Sprintf("%064x", i*7919), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	var plain, gz bytes.Buffer
	if _, err := w.WriteTo(&plain); err != nil {
		t.Fatal(err)
	}
	n, err := w.WriteGzipTo(&gz)
	if err != nil || n != int64(gz.Len()) {
		t.Fatalf("WriteGzipTo: %d bytes, %v; wrote %d", n, err, gz.Len())
	}
	if gz.Len()*2 > plain.Len() {
		t.Errorf("gzipped index is %d bytes, its lines %d: not compressed", gz.Len(), plain.Len())
	}
	read := func(data []byte) ([]messages.FileEntry, error) {
		var got []messages.FileEntry
		err := ReadFileIndex(bytes.NewReader(data), func(e messages.FileEntry) error { got = append(got, e); return nil })
		return got, err
	}
	fromPlain, err := read(plain.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	fromGz, err := read(gz.Bytes())
	if err != nil || len(fromGz) != 1000 || !slices.Equal(fromGz, fromPlain) {
		t.Fatalf("gzipped index read back as %d entries (%v), plain as %d", len(fromGz), err, len(fromPlain))
	}
	damaged := bytes.Clone(gz.Bytes())
	damaged[len(damaged)/2] ^= 0xff
	if _, err := read(damaged); err == nil {
		t.Error("a damaged gzipped index was read without an error")
	}
}

// A path added twice, and an index out of order, are errors naming the path.
func TestFileIndexRefusesDuplicatesAndDisorder(t *testing.T) {
	w := NewFileIndexWriter("", 0)
	defer w.Close()
	for _, p := range []string{"files/a", "files/b", "files/a"} {
		if err := w.Add(messages.FileEntry{Path: p}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.WriteTo(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"files/a" listed twice`) {
		t.Errorf("duplicate: %v", err)
	}
	if err := w.Add(messages.FileEntry{Path: "../escape"}); err == nil {
		t.Error("a path outside the backup was taken")
	}
	unsorted := "{\"p\":\"files/b\",\"n\":1}\n{\"p\":\"files/a\",\"n\":1}\n"
	err := ReadFileIndex(strings.NewReader(unsorted), func(messages.FileEntry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), `"files/a" is not after "files/b"`) {
		t.Errorf("unsorted index: %v", err)
	}
}

// A file index is read from a backup, which may be damaged or crafted: whatever it holds, the
// reader never panics, returns entries strictly in path order, and what it accepts the writer
// writes back (plain and gzipped) to the same entries.
func FuzzReadFileIndex(f *testing.F) {
	sum := strings.Repeat("a", 64)
	f.Add([]byte(`{"path":"files/a","key":"a","size":1,"sha256":"` + sum + `"}` + "\n" + `{"path":"files/b","key":"b","size":2,"mtime":5}` + "\n"))
	f.Add([]byte(`{"path":"files/b"}` + "\n" + `{"path":"files/a"}` + "\n"))
	f.Add([]byte(`{"path":"files/a\u00ff","key":"a\u00ff","etag":"e","mode":420}` + "\n"))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	f.Add([]byte(`{"path":"files/a"` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []messages.FileEntry
		err := ReadFileIndex(bytes.NewReader(data), func(e messages.FileEntry) error {
			if n := len(got); n > 0 && e.Path <= got[n-1].Path {
				t.Fatalf("entry %q after %q: not in path order", e.Path, got[n-1].Path)
			}
			got = append(got, e)
			return nil
		})
		if err != nil || len(got) == 0 {
			return
		}
		w := NewFileIndexWriter("", 1<<20)
		defer w.Close()
		for _, e := range got {
			if w.Add(e) != nil {
				return // a path the writer refuses (checked where an index is written)
			}
		}
		var plain, zipped bytes.Buffer
		if _, err := w.WriteTo(&plain); err != nil {
			t.Fatalf("write back: %v", err)
		}
		if _, err := w.WriteGzipTo(&zipped); err != nil {
			t.Fatalf("write back gzipped: %v", err)
		}
		want := make([]messages.FileEntry, len(got))
		for i, e := range got {
			e.Changed, e.Reuse, e.Plain = false, "", "" // never written to an index
			want[i] = e
		}
		for name, out := range map[string][]byte{"plain": plain.Bytes(), "gzip": zipped.Bytes()} {
			var again []messages.FileEntry
			if err := ReadFileIndex(bytes.NewReader(out), func(e messages.FileEntry) error {
				again = append(again, e)
				return nil
			}); err != nil {
				t.Fatalf("%s: read back: %v\n%q", name, err, out)
			}
			if !slices.Equal(again, want) {
				t.Fatalf("%s: round trip:\n got %+v\nwant %+v", name, again, want)
			}
		}
	})
}
