package coordinator

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// failAfter is a writer that fails once it has taken n bytes.
type failAfter struct {
	n   int
	got bytes.Buffer
}

var errDisk = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.got.Len()+len(p) > f.n {
		return 0, errDisk
	}
	return f.got.Write(p)
}

// The publish's pipeline stages hand bytes on unchanged and in order, and an error on either
// side reaches the other: a failed write is returned by a later Write or Close, a failed read
// by Read after the bytes before it.
func TestSealedPipelineStages(t *testing.T) {
	data := make([]byte, 3*stageBufferSize+12345)
	rand.Read(data)

	var out bytes.Buffer
	w := newAsyncWriter(&out)
	if _, err := io.Copy(w, iotest.OneByteReader(bytes.NewReader(data[:1000]))); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[1000:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("async writer: %v, %d bytes of %d", err, out.Len(), len(data))
	}
	fw := newAsyncWriter(&failAfter{n: stageBufferSize})
	_, werr := fw.Write(data)
	if cerr := fw.Close(); !errors.Is(werr, errDisk) && !errors.Is(cerr, errDisk) {
		t.Fatalf("a failing write: Write %v, Close %v", werr, cerr)
	}

	ra := newReadAhead(bytes.NewReader(data))
	got, err := io.ReadAll(iotest.HalfReader(ra))
	ra.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read ahead: %v, %d bytes of %d", err, len(got), len(data))
	}
	errRead := errors.New("damaged")
	ra = newReadAhead(io.MultiReader(bytes.NewReader(data[:5000]), iotest.ErrReader(errRead)))
	got, err = io.ReadAll(ra)
	ra.Close()
	if !errors.Is(err, errRead) || !bytes.Equal(got, data[:5000]) {
		t.Fatalf("read ahead of a failing reader: %v after %d bytes", err, len(got))
	}
	ra = newReadAhead(bytes.NewReader(data)) // closed before it is read: no goroutine left
	ra.Close()
}

// sizeLog records the size of each write.
type sizeLog struct {
	bytes.Buffer
	sizes []int
}

func (s *sizeLog) Write(p []byte) (int, error) {
	s.sizes = append(s.sizes, len(p))
	return s.Buffer.Write(p)
}

// io.Copy from the read-ahead hands its buffers on whole (no copy through io.Copy's 32 KiB
// buffer), after what Read already returned, and ends with the reader's error or the
// writer's.
func TestReadAheadWriteTo(t *testing.T) {
	data := make([]byte, 3*stageBufferSize+12345)
	rand.Read(data)

	ra := newReadAhead(bytes.NewReader(data))
	head := make([]byte, 1000)
	if _, err := io.ReadFull(ra, head); err != nil {
		t.Fatal(err)
	}
	var out sizeLog
	n, err := io.Copy(&out, ra)
	ra.Close()
	if err != nil || n != int64(len(data)-1000) || !bytes.Equal(append(head, out.Bytes()...), data) {
		t.Fatalf("write to: %v, %d bytes of %d", err, n, len(data)-1000)
	}
	if len(out.sizes) != 4 || out.sizes[1] != stageBufferSize {
		t.Fatalf("writes of %v bytes, want the rest of the first buffer then whole buffers", out.sizes)
	}

	errRead := errors.New("damaged")
	ra = newReadAhead(io.MultiReader(bytes.NewReader(data[:5000]), iotest.ErrReader(errRead)))
	out.Reset()
	n, err = io.Copy(&out, ra)
	ra.Close()
	if !errors.Is(err, errRead) || n != 5000 || !bytes.Equal(out.Bytes(), data[:5000]) {
		t.Fatalf("write to from a failing reader: %v after %d bytes", err, n)
	}

	ra = newReadAhead(bytes.NewReader(data))
	_, err = io.Copy(&failAfter{n: stageBufferSize}, ra)
	ra.Close()
	if !errors.Is(err, errDisk) {
		t.Fatalf("write to a failing writer: %v", err)
	}
}
