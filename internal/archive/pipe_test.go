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
