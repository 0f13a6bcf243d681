package archive

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// partFile is one file a test part holds.
type partFile struct {
	name string
	data []byte
}

// testFiles are compressible text, random bytes with a neutral name, a .jpg, an empty file
// and a file of a few bytes: every kind of member switch.
func testFiles(t *testing.T) []partFile {
	t.Helper()
	random := make([]byte, 300<<10)
	rand.Read(random)
	jpg := make([]byte, 70<<10)
	rand.Read(jpg)
	text := []byte(strings.Repeat("chapter one, in which nothing happens. ", 5000))
	return []partFile{
		{"files/content/a.json", text},
		{"files/content/b.bin", random},
		{"files/content/c.txt", []byte("tiny")},
		{"files/images/d.jpg", jpg},
		{"files/images/e.empty", nil},
		{"files/media/f.json", text[:9000]},
	}
}

// writeParts writes a staged folder's head, the files as two parts, and the end, and returns
// their concatenation, as a publish does.
func writeParts(t *testing.T, c Compression, top string, files []partFile) []byte {
	t.Helper()
	return writePartsPadded(t, c, top, files, nil, nil)
}

// writePartsPadded is writeParts with the bytes before written first and after written
// right after the head.
func writePartsPadded(t *testing.T, c Compression, top string, files []partFile, before, after []byte) []byte {
	t.Helper()
	ctx := context.Background()
	staged := t.TempDir()
	var sums strings.Builder
	for _, f := range files {
		s := sha256.Sum256(f.data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(s[:]), f.name)
	}
	os.WriteFile(filepath.Join(staged, layout.FileSums), []byte(sums.String()), 0o600)
	os.WriteFile(filepath.Join(staged, layout.FileMetadata), []byte(`{}`), 0o600)
	os.MkdirAll(filepath.Join(staged, ".wnb", "parts"), 0o700)
	os.WriteFile(filepath.Join(staged, ".wnb", "parts", "x"), []byte("working file"), 0o600)
	var out bytes.Buffer
	out.Write(before)
	if _, err := WriteHead(ctx, &out, c, staged, top, func(rel string) bool { return rel == ".wnb" }); err != nil {
		t.Fatal(err)
	}
	out.Write(after)
	for _, half := range [][]partFile{files[:3], files[3:]} {
		var part bytes.Buffer
		p, err := NewPartWriter(&part, c, top, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range half {
			a, err := p.Add(ctx, File{Name: f.name, Size: int64(len(f.data)), Mode: 0o600, ModTime: time.Now()}, bytes.NewReader(f.data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if s := sha256.Sum256(f.data); a.SHA256 != hex.EncodeToString(s[:]) || a.Read != int64(len(f.data)) {
				t.Fatalf("%s: added %+v", f.name, a)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		out.Write(part.Bytes())
	}
	if err := WriteEnd(&out, c); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestPartsConcatenateIntoOneArchive: a head, parts written separately and the end, put end
// to end, are one archive that stock tar lists and extracts (byte-identical files, the
// working folder left out) and that Extract accepts, for each compression.
func TestPartsConcatenateIntoOneArchive(t *testing.T) {
	files := testFiles(t)
	for _, tc := range []struct {
		c       Compression
		tarFlag string
	}{{Gzip, "-z"}, {Zstd, "--zstd"}, {None, ""}} {
		t.Run(string(tc.c), func(t *testing.T) {
			data := writeParts(t, tc.c, "backup_20240101_000000", files)
			file := filepath.Join(t.TempDir(), "backup_20240101_000000"+tc.c.Ext())
			os.WriteFile(file, data, 0o600)
			args := []string{"-x", "-f", file}
			if tc.tarFlag != "" {
				args = append([]string{tc.tarFlag}, args...)
			}
			out := t.TempDir()
			cmd := exec.Command("tar", append(args, "-C", out)...)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tar %v: %v\n%s", args, err, b)
			}
			top := filepath.Join(out, "backup_20240101_000000")
			for _, f := range files {
				got, err := os.ReadFile(filepath.Join(top, f.name))
				if err != nil || !bytes.Equal(got, f.data) {
					t.Fatalf("tar extracted %s: %d bytes, err %v; want %d bytes", f.name, len(got), err, len(f.data))
				}
			}
			if _, err := os.Stat(filepath.Join(top, ".wnb")); err == nil {
				t.Fatal("the working folder went into the archive")
			}
			dest := t.TempDir()
			gotTop, err := Extract(context.Background(), bytes.NewReader(data), dest)
			if err != nil || gotTop != "backup_20240101_000000" {
				t.Fatalf("Extract: top %q, %v", gotTop, err)
			}
			entries, err := List(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if entries[1].Name != "backup_20240101_000000/"+layout.FileMetadata || entries[2].Name != "backup_20240101_000000/"+layout.FileSums {
				t.Fatalf("the archive does not lead with the metadata and SHA256SUMS: %v, %v", entries[1].Name, entries[2].Name)
			}
		})
	}
}

// TestIncompressibleStoredWithoutCompression: random bytes and .jpg files go into stored
// members (the archive is not smaller than them, and the part writer counts them as stored),
// text is compressed.
func TestIncompressibleStoredWithoutCompression(t *testing.T) {
	random := make([]byte, 1<<20)
	rand.Read(random)
	text := []byte(strings.Repeat("a line of a novel that repeats itself. ", 30000))
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			var buf bytes.Buffer
			p, err := NewPartWriter(&buf, c, "top", nil)
			if err != nil {
				t.Fatal(err)
			}
			add := func(name string, data []byte) {
				t.Helper()
				if _, err := p.Add(context.Background(), File{Name: name, Size: int64(len(data))}, bytes.NewReader(data), nil); err != nil {
					t.Fatal(err)
				}
			}
			add("files/a.bin", random)
			add("files/b.jpg", []byte(strings.Repeat("x", 100000))) // by its name alone
			add("files/c.txt", text)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if p.Stored != int64(len(random))+100000 || p.Packed != int64(len(text)) {
				t.Fatalf("stored %d, packed %d; want %d, %d", p.Stored, p.Packed, len(random)+100000, len(text))
			}
			// Stored: the random megabyte and the jpg come out whole; the text shrinks.
			if n := buf.Len(); n < len(random)+100000 || n > len(random)+100000+len(text)/5 {
				t.Fatalf("part of %d bytes for %d stored bytes and %d compressible ones", n, len(random)+100000, len(text))
			}
		})
	}
}

// TestIncompressibleDecision: what compresses by either means (short codes for frequent
// bytes, references for repeats) is compressed; random bytes never are, whatever the sample.
func TestIncompressibleDecision(t *testing.T) {
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	block := random(1 << 10)
	cases := []struct {
		name   string
		sample []byte
		want   bool
	}{
		{"text", []byte(strings.Repeat("a line of a novel. ", 1000)), false},
		{"base64 of random bytes (entropy coding only)", []byte(base64.StdEncoding.EncodeToString(random(12 << 10))), false},
		{"a random block repeated (matches only)", bytes.Repeat(block, 16), false},
		{"random then zeros", append(random(14<<10), make([]byte, 2<<10)...), false},
		{"small random file", random(smallFile - 1), false},
		{"a .jpg by its name", []byte(strings.Repeat("x", 100)), true},
	}
	for _, c := range cases {
		name := "f.bin"
		if strings.Contains(c.name, ".jpg") {
			name = "f.JPG"
		}
		if got := Incompressible(name, c.sample); got != c.want {
			t.Errorf("%s: Incompressible %v, want %v", c.name, got, c.want)
		}
	}
	// The statistical estimate this replaces called about 2% of random 16 KiB samples
	// compressible: a few thousand samples of each size find any such noise.
	for _, n := range []int{smallFile, 16 << 10, sampleSize} {
		for i := range 2000 {
			if !Incompressible("f.bin", random(n)) {
				t.Fatalf("random sample %d of %d bytes taken as compressible", i, n)
			}
		}
	}
}

// TestShrunkSourcePadded: a file that ends before its header's size is padded with zeros,
// the sum covers what the archive holds, and Read says how much was read.
func TestShrunkSourcePadded(t *testing.T) {
	var buf bytes.Buffer
	p, _ := NewPartWriter(&buf, Gzip, "top", nil)
	a, err := p.Add(context.Background(), File{Name: "files/x", Size: 10}, strings.NewReader("abc"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(append([]byte("abc"), make([]byte, 7)...))
	if a.Read != 3 || a.SHA256 != hex.EncodeToString(want[:]) {
		t.Fatalf("added %+v", a)
	}
}
