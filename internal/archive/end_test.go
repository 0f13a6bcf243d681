package archive

import (
	"archive/tar"
	"bytes"
	mrand "math/rand/v2"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestEndsWhole: an archive as this tool writes it ends whole in every compression, and so
// does a one-stream .tar.gz (an earlier version's, the Python command's); the same archives
// cut short do not (a one-stream trailer is told by its size field, which a cut leaves a
// multiple of 512 about one time in 512; an archive built from parts never passes for one),
// nor do parts without their end.
func TestEndsWhole(t *testing.T) {
	// The last file is random bytes, as most of an archive's compressed bytes look, from a
	// fixed seed: the cuts land in it the same way each run.
	last := make([]byte, 16<<10)
	mrand.NewChaCha8([32]byte{7}).Read(last)
	files := append(testFiles(t), partFile{"files/z/last.bin", last})
	for _, c := range []Compression{Gzip, Zstd, None} {
		t.Run(string(c), func(t *testing.T) {
			whole := writeParts(t, c, "backup_20240101_000000", files)
			if !ends(whole, c) {
				t.Fatal("a whole archive does not end whole")
			}
			if missed := cutsTakenForWhole(whole, c); missed > 0 {
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
			if ends(part.Bytes(), c) {
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
	if !ends(one.Bytes(), Gzip) {
		t.Error("a whole one-stream .tar.gz does not end whole")
	}
	// A cut is missed when its last four bytes read as a multiple of 512: about 4 of 1999.
	if missed := cutsTakenForWhole(one.Bytes(), Gzip); missed > 12 {
		t.Errorf("one stream: %d of 1999 cuts end whole", missed)
	}
}

// cutsTakenForWhole counts the cuts of 1 to 1999 bytes off b that EndsWhole takes for whole.
func cutsTakenForWhole(b []byte, c Compression) int {
	n := 0
	for cut := 1; cut < 2000; cut++ {
		if ends(b[:len(b)-cut], c) {
			n++
		}
	}
	return n
}

// FuzzEndsWhole: any tail, of any kind, is judged without a panic.
func FuzzEndsWhole(f *testing.F) {
	f.Add([]byte{0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, int64(20), uint8(0))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, int64(8), uint8(1))
	f.Fuzz(func(t *testing.T, tail []byte, size int64, kind uint8) {
		EndsWhole(tail, tail, size, []Compression{Gzip, Zstd, None}[kind%3])
	})
}

// ends judges the archive b as its lister does, from its first and last bytes.
func ends(b []byte, c Compression) bool {
	return EndsWhole(b[:min(len(b), HeadSize)], b[max(0, len(b)-EndSize):], int64(len(b)), c)
}
