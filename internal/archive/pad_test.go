package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// TestPadIsInvisible: a pad of any length a compression allows, put between an archive's
// first part and the next (or, plain tar, before the first), is exactly that long, and stock
// tar, Extract and List read the archive as if it were not there (the metadata still leads).
func TestPadIsInvisible(t *testing.T) {
	files := testFiles(t)
	const top = "backup_20240101_000000"
	for _, tc := range []struct {
		c       Compression
		tarFlag string
		lengths []int64
	}{
		{Gzip, "-z", []int64{gzipPadMin, gzipPadMin + 1, 4096, gzipPadMax + 1, 3*gzipPadMax - 5}},
		{Zstd, "--zstd", []int64{zstdPadMin, zstdPadMin + 1, 4096, 1 << 20}},
		{None, "", []int64{512, 1024, 4096, 4608}},
	} {
		for _, n := range tc.lengths {
			t.Run(fmt.Sprintf("%s-%d", tc.c, n), func(t *testing.T) {
				var pad bytes.Buffer
				if err := WritePad(&pad, tc.c, n); err != nil {
					t.Fatal(err)
				}
				if int64(pad.Len()) != n {
					t.Fatalf("WritePad(%d) wrote %d bytes", n, pad.Len())
				}
				data := writePartsPadded(t, tc.c, top, files, nil, pad.Bytes())
				if tc.c == None {
					data = writePartsPadded(t, tc.c, top, files, pad.Bytes(), nil)
				}
				file := filepath.Join(t.TempDir(), top+tc.c.Ext())
				os.WriteFile(file, data, 0o600)
				args := []string{"-x", "-f", file}
				if tc.tarFlag != "" {
					args = append([]string{tc.tarFlag}, args...)
				}
				out := t.TempDir()
				if b, err := exec.Command("tar", append(args, "-C", out)...).CombinedOutput(); err != nil || len(b) > 0 {
					t.Fatalf("tar %v: %v\n%s", args, err, b)
				}
				for _, f := range files {
					got, err := os.ReadFile(filepath.Join(out, top, f.name))
					if err != nil || !bytes.Equal(got, f.data) {
						t.Fatalf("tar extracted %s: %d bytes, err %v; want %d bytes", f.name, len(got), err, len(f.data))
					}
				}
				if gotTop, err := Extract(context.Background(), bytes.NewReader(data), t.TempDir()); err != nil || gotTop != top {
					t.Fatalf("Extract: top %q, %v", gotTop, err)
				}
				entries, err := List(context.Background(), bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if entries[1].Name != top+"/"+layout.FileMetadata || len(entries) != len(files)+3 {
					t.Fatalf("List: %d entries, the second %s", len(entries), entries[1].Name)
				}
			})
		}
	}
}

// TestPadFor: the pad brings a length to the next multiple of the alignment, never shorter
// than the compression allows.
func TestPadFor(t *testing.T) {
	for _, tc := range []struct {
		c          Compression
		n, a, want int64
	}{
		{Gzip, 4000, 4096, 96}, {Gzip, 4090, 4096, 4096 + 6}, {Gzip, 4096, 4096, 4096},
		{Zstd, 4090, 4096, 6 + 4096}, {Zstd, 4088, 4096, 8}, {None, 3584, 4096, 512}, {None, 4096, 4096, 4096},
	} {
		if got := PadFor(tc.c, tc.n, tc.a); got != tc.want {
			t.Errorf("PadFor(%s, %d, %d) = %d, want %d", tc.c, tc.n, tc.a, got, tc.want)
		}
	}
}
