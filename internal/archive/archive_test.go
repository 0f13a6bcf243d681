package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

const top = "backup_20241201_143022"

// makeBackup writes a small backup folder: fixtures, nested files, odd
// names, modes and mtimes, and the metadata (alphabetically first, so that
// only Write's rule puts it last).
func makeBackup(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	files := []struct {
		name string
		mode fs.FileMode
		data string
	}{
		{layout.FileMetadata, 0o644, `{"status": "complete"}`},
		{layout.FileSums, 0o644, "sums\n"},
		{layout.FileRestore, 0o755, "#!/bin/sh\n"},
		{"db_books_book.json", 0o644, "[\n]\n"},
		{"files/content/1/1.json", 0o644, `{"text": "chapter"}`},
		{"files/content/1/with space.json", 0o600, "space"},
		{"files/images/covers/back\\slash.png", 0o644, "png"},
		{"files/media/empty.bin", 0o644, ""},
		{"files/media/books/" + strings.Repeat("long", 40) + ".epub", 0o644, "long name"},
	}
	mtime := time.Date(2024, 12, 1, 14, 30, 22, 0, time.UTC)
	for i, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
		mt := mtime.Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	// A real manifest: Extract checks every later entry against it.
	sw, err := layout.SumTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := sw.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, layout.FileSums)
	if err := os.WriteFile(p, sums, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime.Add(time.Hour), mtime.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "files", "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

type node struct {
	Mode  fs.FileMode
	MTime int64 // files only: folder mtimes change as tar adds entries
	Data  string
}

// tree describes the folder at root, for comparison.
func tree(t *testing.T, root string) map[string]node {
	t.Helper()
	m := make(map[string]node)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		n := node{Mode: info.Mode()}
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Data, n.MTime = string(data), info.ModTime().Unix()
		}
		m[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeArchive(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	st, err := Write(context.Background(), &buf, dir, top)
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 9 || st.Dirs != 9 || st.Bytes != 862 {
		t.Errorf("Write stats %+v, want 9 files, 9 dirs, 862 bytes (SHA256SUMS lists 6 files)", st)
	}
	return buf.Bytes()
}

func TestWriteReadByTar(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("tar not installed")
	}
	src := makeBackup(t)
	name := filepath.Join(t.TempDir(), top+".tar.gz")
	if err := os.WriteFile(name, writeArchive(t, src), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if out, err := exec.Command("tar", "xzf", name, "-C", dest).CombinedOutput(); err != nil {
		t.Fatalf("tar xzf: %v\n%s", err, out)
	}
	if got, want := tree(t, filepath.Join(dest, top)), tree(t, src); !reflect.DeepEqual(got, want) {
		t.Errorf("tar xzf tree differs:\n got %v\nwant %v", got, want)
	}
	out, err := exec.Command("tar", "tzf", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	// Item 8: the metadata and SHA256SUMS come first, so a reader can check every later entry.
	if lines[1] != top+"/"+layout.FileMetadata || lines[2] != top+"/"+layout.FileSums {
		t.Errorf("entries 2 and 3 (tar tzf) = %q, want the metadata and SHA256SUMS", lines[1:3])
	}
	if lines[0] != top+"/" {
		t.Errorf("first entry = %q, want the top folder", lines[0])
	}
}

func TestWriteExtractRoundTrip(t *testing.T) {
	src := makeBackup(t)
	data := writeArchive(t, src)
	dest := t.TempDir()
	got, err := Extract(context.Background(), bytes.NewReader(data), dest)
	if err != nil {
		t.Fatal(err)
	}
	if got != top {
		t.Errorf("top = %q, want %q", got, top)
	}
	if g, w := tree(t, filepath.Join(dest, top)), tree(t, src); !reflect.DeepEqual(g, w) {
		t.Errorf("extracted tree differs:\n got %v\nwant %v", g, w)
	}
	if ents, _ := os.ReadDir(dest); len(ents) != 1 {
		t.Errorf("dest holds %d entries, want only the top folder", len(ents))
	}
	entries, err := List(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if first := entries[1]; first.Name != top+"/"+layout.FileMetadata || first.IsDir {
		t.Errorf("List entry after the top folder %+v, want the metadata", first)
	}
}

func TestWriteDeterministic(t *testing.T) {
	src := makeBackup(t)
	a, b := writeArchive(t, src), writeArchive(t, src)
	if !bytes.Equal(a, b) {
		t.Error("two archives of the same folder differ")
	}
}

func TestWriteRefuses(t *testing.T) {
	src := makeBackup(t)
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "files", "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(context.Background(), io.Discard, src, top); err == nil || !strings.Contains(err.Error(), "files/link") {
		t.Errorf("Write with a symlink: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := Write(context.Background(), io.Discard, t.TempDir(), bad); err == nil {
			t.Errorf("Write top %q: no error", bad)
		}
	}
}

// cancelWriter cancels its context once n bytes went through.
type cancelWriter struct {
	n      int
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.n -= len(p)
	if w.n <= 0 {
		w.cancel()
	}
	return len(p), nil
}

func TestWriteCancel(t *testing.T) {
	src := t.TempDir()
	big := make([]byte, 16<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), big, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelWriter{n: 1 << 20, cancel: cancel}
	st, err := Write(ctx, w, src, top, WithConcurrency(256<<10, 2))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if st.Bytes >= 32<<20 {
		t.Errorf("wrote %d bytes after cancel: not prompt", st.Bytes)
	}
}

func BenchmarkWrite(b *testing.B) {
	// 32 MB: half random (incompressible), half text-like (compressible).
	src := b.TempDir()
	rnd := make([]byte, 4<<20)
	text := bytes.Repeat([]byte(`{"model": "books.chapter", "pk": 1, "fields": {"title": "A chapter"}}`+"\n"), (4<<20)/70)
	for i := range 4 {
		if _, err := rand.Read(rnd); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("r%d", i)), rnd, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("t%d.json", i)), text, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var total int64
	for _, e := range mustReadDir(b, src) {
		info, _ := e.Info()
		total += info.Size()
	}
	b.SetBytes(total)
	b.ResetTimer()
	var out countWriter
	for range b.N {
		out = 0
		if _, err := Write(context.Background(), &out, src, top); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out)/float64(total), "out/in")
}

type countWriter int64

func (w *countWriter) Write(p []byte) (int, error) {
	*w += countWriter(len(p))
	return len(p), nil
}

func mustReadDir(t testing.TB, dir string) []fs.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

// gzipTar builds a tar.gz from headers; regular files get body as content.
func gzipTar(t testing.TB, hdrs []*tar.Header, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, h := range hdrs {
		h := *h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("header %q: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dir(name string) *tar.Header  { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
func file(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }

func goodEntries(n int) []*tar.Header {
	hdrs := []*tar.Header{dir(top + "/"), dir(top + "/files/")}
	for i := range n {
		hdrs = append(hdrs, file(fmt.Sprintf("%s/files/f%04d", top, i)))
	}
	return hdrs
}

func TestExtractRefusesHostile(t *testing.T) {
	tests := []struct {
		name  string
		bad   *tar.Header
		entry string // named in the error
	}{
		{"dotdot", file("../x"), "../x"},
		{"absolute", file("/etc/x"), "/etc/x"},
		{"escape inside top", file(top + "/../../x"), top + "/../../x"},
		{"dotdot in middle", file(top + "/files/../x"), top + "/files/../x"},
		{"symlink", &tar.Header{Name: top + "/l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, top + "/l"},
		{"relative symlink", &tar.Header{Name: top + "/l", Typeflag: tar.TypeSymlink, Linkname: "files"}, top + "/l"},
		{"hardlink", &tar.Header{Name: top + "/h", Typeflag: tar.TypeLink, Linkname: top + "/files/f0000"}, top + "/h"},
		{"char device", &tar.Header{Name: top + "/c", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, top + "/c"},
		{"block device", &tar.Header{Name: top + "/b", Typeflag: tar.TypeBlock, Devmajor: 8}, top + "/b"},
		{"fifo", &tar.Header{Name: top + "/p", Typeflag: tar.TypeFifo}, top + "/p"},
		{"outside top", file("other/x"), "other/x"},
		{"other top folder", dir("other/"), "other/"},
		{"file at top level", file("loose.json"), "loose.json"},
		// A duplicate is named by whichever of the two comes second.
		{"duplicate file", file(top + "/files/f0001"), "/files/f0001"},
		{"duplicate via dot", file(top + "/./files/f0001"), "/files/f0001"},
		{"duplicate folder", dir(top + "/files/"), "/files/"},
		// A file after a folder of its name (after0), a folder after a file (after200).
		{"folder named as a file", dir(top + "/files/f0001"), top + "/files/f0001"},
		{"dot", dir("./"), "./"},
	}
	for _, tt := range tests {
		for _, n := range []int{0, 200} { // first thing after the top, and after many good entries
			t.Run(fmt.Sprintf("%s/after%d", tt.name, n), func(t *testing.T) {
				good := goodEntries(max(n, 2))
				hdrs := append(good, tt.bad)
				if n == 0 {
					hdrs = append([]*tar.Header{good[0], tt.bad}, good[1:]...)
				}
				assertRefused(t, gzipTar(t, hdrs, "content"), tt.entry)
			})
		}
	}
}

// TestExtractRefusesHostileFirst: the hostile entry is the very first.
func TestExtractRefusesHostileFirst(t *testing.T) {
	for _, bad := range []*tar.Header{file("../x"), file("/etc/passwd"), {Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}} {
		assertRefused(t, gzipTar(t, append([]*tar.Header{bad}, goodEntries(3)...), "x"), bad.Name)
	}
}

func assertRefused(t *testing.T, data []byte, entry string) {
	t.Helper()
	dest := t.TempDir()
	top, err := Extract(context.Background(), bytes.NewReader(data), dest)
	if !errors.Is(err, ErrUnsafe) {
		t.Fatalf("err = %v, want ErrUnsafe", err)
	}
	if top != "" {
		t.Errorf("top = %q on refusal", top)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", entry)) && !strings.Contains(err.Error(), entry+`"`) {
		t.Errorf("error %q does not name entry %q", err, entry)
	}
	if ents := mustReadDir(t, dest); len(ents) != 0 {
		t.Errorf("dest not empty after refusal: %v", ents)
	}
}

func TestExtractErrorsLeaveNothing(t *testing.T) {
	good := gzipTar(t, goodEntries(50), strings.Repeat("data ", 1000))
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-6] ^= 0xff // inside the CRC-32 trailer
	tests := map[string][]byte{
		"truncated":     good[:len(good)/2],
		"bad crc":       corrupt,
		"not gzip":      []byte("PK\x03\x04 not a tar.gz"),
		"empty archive": gzipTar(t, nil, ""),
		"empty input":   nil,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			dest := t.TempDir()
			if _, err := Extract(context.Background(), bytes.NewReader(data), dest); err == nil {
				t.Fatal("no error")
			}
			if ents := mustReadDir(t, dest); len(ents) != 0 {
				t.Errorf("dest not empty: %v", ents)
			}
		})
	}
}

func TestExtractExistingTop(t *testing.T) {
	dest := t.TempDir()
	if err := os.Mkdir(filepath.Join(dest, top), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Extract(context.Background(), bytes.NewReader(gzipTar(t, goodEntries(2), "x")), dest); err == nil {
		t.Error("extract over an existing folder: no error")
	}
	if ents := mustReadDir(t, dest); len(ents) != 1 {
		t.Errorf("dest holds %v", ents)
	}
}

// TestExtractTarMade reads archives made by GNU tar, as the Python command
// or a user would make them, including a read-only folder.
func TestExtractTarMade(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("tar not installed")
	}
	src := makeBackup(t)
	base := filepath.Join(filepath.Dir(src), top)
	if err := os.Rename(src, base); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(base, "files", "content"), 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(base, "files", "content"), 0o755)
	for _, args := range [][]string{{top}, {"./" + top}} {
		name := filepath.Join(t.TempDir(), "b.tar.gz")
		cmd := exec.Command("tar", append([]string{"czf", name}, args...)...)
		cmd.Dir = filepath.Dir(base)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar czf: %v\n%s", err, out)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		dest := t.TempDir()
		got, err := Extract(context.Background(), f, dest)
		f.Close()
		if err != nil {
			t.Fatalf("Extract of tar czf %v: %v", args, err)
		}
		if got != top {
			t.Errorf("top = %q", got)
		}
		want := tree(t, base)
		want["files/content"] = node{Mode: fs.ModeDir | 0o755} // folders stay owner-writable
		if g := tree(t, filepath.Join(dest, top)); !reflect.DeepEqual(g, want) {
			t.Errorf("tree differs:\n got %v\nwant %v", g, want)
		}
	}
}

func TestExtractCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest := t.TempDir()
	_, err := Extract(ctx, bytes.NewReader(gzipTar(t, goodEntries(5), "x")), dest)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if ents := mustReadDir(t, dest); len(ents) != 0 {
		t.Errorf("dest not empty: %v", ents)
	}
}

// rawTar builds an uncompressed tar for the fuzz corpus.
func rawTar(t testing.TB, hdrs []*tar.Header) []byte {
	t.Helper()
	gz := gzipTar(t, hdrs, "body")
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// FuzzExtract feeds tar streams (gzipped here, as gzip's checksum would
// stop most mutations) to Extract: whatever happens, nothing may land
// outside dest, nothing but files and folders may be created, and a
// failure leaves dest empty.
func FuzzExtract(f *testing.F) {
	f.Add(rawTar(f, goodEntries(3)))
	f.Add(rawTar(f, append(goodEntries(2), file(top+"/../x"))))
	f.Add(rawTar(f, append(goodEntries(2), &tar.Header{Name: top + "/l", Typeflag: tar.TypeSymlink, Linkname: "/etc"})))
	f.Add(rawTar(f, append(goodEntries(2), file(top+"/files/f0000"))))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		gz.Write(raw)
		gz.Close()
		outer := t.TempDir()
		dest := filepath.Join(outer, "dest")
		if err := os.Mkdir(dest, 0o700); err != nil {
			t.Fatal(err)
		}
		top, err := Extract(context.Background(), &buf, dest)
		if ents := mustReadDir(t, outer); len(ents) != 1 {
			t.Fatalf("something landed beside dest: %v", ents)
		}
		ents := mustReadDir(t, dest)
		if err != nil {
			if len(ents) != 0 {
				t.Fatalf("dest not empty after error %v: %v", err, ents)
			}
			return
		}
		if len(ents) != 1 || ents[0].Name() != top || !ents[0].IsDir() {
			t.Fatalf("dest holds %v, want the top folder %q", ents, top)
		}
		filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !d.Type().IsRegular() {
				t.Fatalf("%s: type %v extracted", p, d.Type())
			}
			return nil
		})
	})
}

// TestExtractRefusesSparse: a sparse file expands to its logical size, so
// a small archive could fill the disk.
func TestExtractRefusesSparse(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("tar not installed")
	}
	base := filepath.Join(t.TempDir(), top)
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(base, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("head")
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, format := range []string{"pax", "gnu"} {
		name := filepath.Join(t.TempDir(), "s.tar.gz")
		cmd := exec.Command("tar", "--sparse", "--format="+format, "-czf", name, top)
		cmd.Dir = filepath.Dir(base)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		assertRefused(t, data, top+"/sparse")
	}
}

func TestExtractMaxBytes(t *testing.T) {
	data := gzipTar(t, goodEntries(10), "0123456789") // 100 bytes
	dest := t.TempDir()
	if _, err := Extract(context.Background(), bytes.NewReader(data), dest, WithMaxBytes(99)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
	if ents := mustReadDir(t, dest); len(ents) != 0 {
		t.Errorf("dest not empty: %v", ents)
	}
	if _, err := Extract(context.Background(), bytes.NewReader(data), dest, WithMaxBytes(100)); err != nil {
		t.Errorf("Extract within the limit: %v", err)
	}
}

// TestExtractNegativeSize patches a header's size field to -1 (base-256).
func TestExtractNegativeSize(t *testing.T) {
	hdrs := append(goodEntries(2), file(top+"/neg"))
	raw := rawTar(t, hdrs)
	// Find the header block of top/neg.
	off := bytes.Index(raw, []byte(top+"/neg\x00"))
	if off < 0 || off%512 != 0 {
		t.Fatalf("header not found at a block boundary: %d", off)
	}
	blk := raw[off : off+512]
	for i := 124; i < 136; i++ { // size: base-256, all ones = -1
		blk[i] = 0xff
	}
	for i := 148; i < 156; i++ { // checksum computed with spaces here
		blk[i] = ' '
	}
	var sum int
	for _, b := range blk {
		sum += int(b)
	}
	copy(blk[148:], fmt.Sprintf("%06o\x00 ", sum))
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Write(raw)
	gz.Close()
	dest := t.TempDir()
	if _, err := Extract(context.Background(), &buf, dest); err == nil {
		t.Fatal("negative size accepted")
	}
	if ents := mustReadDir(t, dest); len(ents) != 0 {
		t.Errorf("dest not empty: %v", ents)
	}
}
