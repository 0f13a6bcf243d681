package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// textSource is size bytes of text (words drawn at random: it compresses to about a quarter,
// as chapters do) that counts what was read of it.
type textSource struct {
	left int64
	read atomic.Int64
	rng  uint64
	word []byte
}

var textWords = strings.Fields("the cultivator looked at mountain and back sect elder qi " +
	"sword heaven dao river moon young master realm breakthrough pill furnace disciple, " +
	"spirit stone. said: \"no!\" sky thunder tribulation")

func (s *textSource) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.left))
	for i := range n {
		if len(s.word) == 0 {
			s.rng = s.rng*6364136223846793005 + 1442695040888963407
			s.word = append([]byte(textWords[(s.rng>>33)%uint64(len(textWords))]), ' ')
		}
		p[i], s.word = s.word[0], s.word[1:]
	}
	s.left -= int64(n)
	s.read.Add(int64(n))
	return n, nil
}

// stallingDest holds its first write until added is closed (or a deadline passes), recording
// whether it was.
type stallingDest struct {
	added    chan struct{}
	first    bool
	overlaps bool
	out      bytes.Buffer
}

func (d *stallingDest) Write(p []byte) (int, error) {
	if !d.first {
		d.first = true
		select {
		case <-d.added:
			d.overlaps = true
		case <-time.After(5 * time.Second):
		}
	}
	return d.out.Write(p)
}

// TestPartWriterReadsWhileCompressing: a compressed member's bytes are compressed and written
// while the file's next bytes are read, so a task keeps both cores busy. The destination holds
// its first write until the file is read whole (Add returned): a writer that compresses on the
// reading goroutine cannot read on, and the wait ends at the deadline unmet.
func TestPartWriterReadsWhileCompressing(t *testing.T) {
	const size = 400 << 10 // more than one chunk, less than the chunks in flight
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			dst := &stallingDest{added: make(chan struct{})}
			p, err := NewPartWriter(dst, c, "top", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Abort()
			f := File{Name: "files/content/1.json", Size: size, Mode: 0o600, ModTime: time.Unix(1e9, 0)}
			if _, err := p.Add(context.Background(), f, &textSource{left: size}, nil); err != nil {
				t.Fatal(err)
			}
			close(dst.added)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if !dst.overlaps {
				t.Fatalf("%s: the file was read only after the destination took the first compressed bytes", c)
			}
			r, _, err := NewReader(&dst.out)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, r)
			if err != nil || n < size {
				t.Fatalf("part reads back %d bytes, %v; want the file and its header", n, err)
			}
		})
	}
}

// failingDest fails every write after the first limit bytes.
type failingDest struct{ limit int }

var errDiskFull = errors.New("disk full")

func (d *failingDest) Write(p []byte) (int, error) {
	if len(p) > d.limit {
		n := d.limit
		d.limit = 0
		return n, errDiskFull
	}
	d.limit -= len(p)
	return len(p), nil
}

// TestPartWriterDestinationError: a destination's write error met by the compressing
// goroutine is returned by Add or Close (never dropped), and Abort leaves no goroutine behind.
func TestPartWriterDestinationError(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			before := runtime.NumGoroutine()
			p, err := NewPartWriter(&failingDest{limit: 64 << 10}, c, "top", nil)
			if err != nil {
				t.Fatal(err)
			}
			f := File{Name: "files/content/1.json", Size: 8 << 20, Mode: 0o600, ModTime: time.Unix(1e9, 0)}
			_, err = p.Add(context.Background(), f, &textSource{left: 8 << 20}, nil)
			if err == nil {
				err = p.Close()
			}
			p.Abort()
			if !errors.Is(err, errDiskFull) {
				t.Fatalf("Add/Close: %v; want the destination's error", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Fatalf("%d goroutines after Abort, %d before", n, before)
			}
		})
	}
}

// countingDest counts the writes it is given.
type countingDest struct {
	writes int
	bytes  int
}

func (d *countingDest) Write(p []byte) (int, error) {
	d.writes++
	d.bytes += len(p)
	return len(p), nil
}

// TestPartWriterWritesInLargePieces: a part reaches its destination in writes of many KiB (a
// system call each on a file), not in the few hundred bytes a compressor emits at a time.
func TestPartWriterWritesInLargePieces(t *testing.T) {
	const size = 8 << 20
	for _, c := range []Compression{Gzip, Zstd, None} {
		t.Run(string(c), func(t *testing.T) {
			dst := &countingDest{}
			p, err := NewPartWriter(dst, c, "top", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Abort()
			for i := range 4 {
				f := File{Name: fmt.Sprintf("files/content/%d.json", i), Size: size / 4, Mode: 0o600, ModTime: time.Unix(1e9, 0)}
				if _, err := p.Add(context.Background(), f, &textSource{left: size / 4}, nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if max := dst.bytes/(64<<10) + 2; dst.writes > max {
				t.Fatalf("%d bytes in %d writes; want at most %d writes", dst.bytes, dst.writes, max)
			}
		})
	}
}

// TestPartWriterPacksOnEveryCore: a compressible file's chunks are compressed by several
// packers at once (each waits, up to a deadline, until another is busy too), and the part
// reads back whole, no more than a twentieth larger than one stream at the same level.
func TestPartWriterPacksOnEveryCore(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one core: one packer")
	}
	const size = 4 << 20
	for _, c := range []Compression{Gzip, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			var out bytes.Buffer
			p, err := NewPartWriter(&out, c, "top", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Abort()
			if err := p.setupPackers(); err != nil {
				t.Fatal(err)
			}
			var active, most atomic.Int32
			for i, pack := range p.pipe.packers {
				p.pipe.packers[i] = func(dst, src []byte) ([]byte, error) {
					n := active.Add(1)
					defer active.Add(-1)
					for deadline := time.Now().Add(time.Second); n < 2 && time.Now().Before(deadline); n = active.Load() {
						time.Sleep(time.Millisecond)
					}
					if n > most.Load() {
						most.Store(n)
					}
					return pack(dst, src)
				}
			}
			f := File{Name: "files/content/1.json", Size: size, Mode: 0o600, ModTime: time.Unix(1e9, 0)}
			if _, err := p.Add(context.Background(), f, &textSource{left: size}, nil); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if most.Load() < 2 {
				t.Fatalf("at most %d chunk compressed at once", most.Load())
			}
			r, _, err := NewReader(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n < size {
				t.Fatalf("part reads back %d bytes, %v", n, err)
			}
			oneStream := streamSize(t, c, size)
			if got := out.Len(); got > oneStream+oneStream/20 {
				t.Fatalf("%d bytes compressed in chunks, %d as one stream", got, oneStream)
			}
		})
	}
}

// streamSize is the size of size bytes of textSource compressed as one stream at the level
// parts use.
func streamSize(t *testing.T, c Compression, size int64) int {
	t.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	if c == Zstd {
		zs, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		if err != nil {
			t.Fatal(err)
		}
		w = zs
	} else {
		gz, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
		w = gz
	}
	if _, err := io.Copy(w, &textSource{left: size}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return out.Len()
}
