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
