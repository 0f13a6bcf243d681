package archive

import (
	"archive/tar"
	"bytes"
	mrand "math/rand/v2"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestEndsWhole: an archive as this tool writes it ends whole in every compression, and so
// does a one-stream .tar.gz (an older version's, the Python command's); the same archives cut
// short do not (a gzip stream's trailer is told by its size field, which a cut leaves a
// multiple of 512 about one time in 512), nor do parts without their end.
func TestEndsWhole(t *testing.T) {
	// The last file is random bytes, as most of an archive's compressed bytes look, from a
	// fixed seed: the cuts land in it the same way each run.
	last := make([]byte, 16<<10)
	mrand.NewChaCha8([32]byte{7}).Read(last)
	files := append(testFiles(t), partFile{"files/z/last.bin", last})
	for _, c := range []Compression{Gzip, Zstd, None} {
		t.Run(string(c), func(t *testing.T) {
			whole := writeParts(t, c, "backup_20240101_000000", files)
			if !EndsWhole(tailOf(whole), int64(len(whole)), c) {
				t.Fatal("a whole archive does not end whole")
			}
			if missed := cutsTakenForWhole(whole, c); missed > allowedMisses(c) {
				t.Errorf("%d of 1999 cuts end whole", missed)
			}
			// The parts without their end: every member is whole, the tar is not.
			var part bytes.Buffer
			p, err := NewPartWriter(&part, c, "backup_20240101_000000", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if _, err := p.Add(t.Context(), File{Name: f.name, Size: int64(len(f.data))}, bytes.NewReader(f.data), nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if c != Gzip && EndsWhole(tailOf(part.Bytes()), int64(part.Len()), c) {
				t.Error("a part without the end ends whole")
			}
		})
	}
	var one bytes.Buffer
	gz := gzip.NewWriter(&one)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		tw.WriteHeader(&tar.Header{Name: "backup_20240101_000000/" + f.name, Mode: 0o644, Size: int64(len(f.data))})
		tw.Write(f.data)
	}
	tw.Close()
	gz.Close()
	if !EndsWhole(tailOf(one.Bytes()), int64(one.Len()), Gzip) {
		t.Error("a whole one-stream .tar.gz does not end whole")
	}
	if missed := cutsTakenForWhole(one.Bytes(), Gzip); missed > allowedMisses(Gzip) {
		t.Errorf("one stream: %d of 1999 cuts end whole", missed)
	}
}

// cutsTakenForWhole counts the cuts of 1 to 1999 bytes off b that EndsWhole takes for whole.
func cutsTakenForWhole(b []byte, c Compression) int {
	n := 0
	for cut := 1; cut < 2000; cut++ {
		if EndsWhole(tailOf(b[:len(b)-cut]), int64(len(b)-cut), c) {
			n++
		}
	}
	return n
}

// allowedMisses: a gzip cut is missed when its last four bytes read as a multiple of 512 (about
// 4 of 1999 cuts); zstd and tar cuts never are.
func allowedMisses(c Compression) int {
	if c == Gzip {
		return 12
	}
	return 0
}

// FuzzEndsWhole: any tail, of any kind, is judged without a panic.
func FuzzEndsWhole(f *testing.F) {
	f.Add([]byte{0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, int64(20), uint8(0))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, int64(8), uint8(1))
	f.Fuzz(func(t *testing.T, tail []byte, size int64, kind uint8) {
		EndsWhole(tail, size, []Compression{Gzip, Zstd, None}[kind%3])
	})
}

func tailOf(b []byte) []byte { return b[max(0, len(b)-EndSize):] }
