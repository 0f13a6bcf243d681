package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"math/rand"
	"os"
	"testing"
	"time"
)

func TestTmpSlow(t *testing.T) {
	seed := rawTar(t, goodEntries(3))
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		raw := bytes.Clone(seed)
		for k := 0; k < 1+r.Intn(4); k++ {
			raw[r.Intn(len(raw))] = byte(r.Intn(256))
		}
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		gz.Write(raw)
		gz.Close()
		dest := t.TempDir()
		start := time.Now()
		_, err := Extract(context.Background(), &buf, dest)
		if d := time.Since(start); d > 200*time.Millisecond {
			tr := tar.NewReader(bytes.NewReader(raw))
			h, _ := tr.Next()
			t.Logf("slow %v err=%v hdr=%+v", d, err, h)
			os.WriteFile("/tmp/slow.tar", raw, 0o644)
			return
		}
	}
}
