package coordinator

import (
	"errors"
	"io"
	"sync"
)

// The publish of an encrypted archive decrypts every part, encrypts it again and hashes and
// writes the result: three passes over every byte that would take turns on one core. These
// two helpers put the first and the last on goroutines of their own, so the passes overlap
// (the publish runs after the tasks, with the machine's cores free).

// stageBuffers and stageBufferSize bound what is in flight between two passes.
const (
	stageBuffers    = 4
	stageBufferSize = 256 << 10
)

// asyncWriter hands what is written to w on a goroutine of its own. An error of w is
// returned by a later Write or by Close, which waits for everything to be written.
type asyncWriter struct {
	w    io.Writer
	full chan []byte
	free chan []byte
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{w: w, full: make(chan []byte, stageBuffers), free: make(chan []byte, stageBuffers), done: make(chan struct{})}
	for range stageBuffers {
		a.free <- make([]byte, 0, stageBufferSize)
	}
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	for b := range a.full {
		if a.failed() == nil {
			if _, err := a.w.Write(b); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		a.free <- b[:0]
	}
}

func (a *asyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Write copies p into buffers queued for w.
func (a *asyncWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := a.failed(); err != nil {
			return n, err
		}
		b := <-a.free
		k := min(len(p), cap(b))
		b = append(b, p[:k]...)
		a.full <- b
		n, p = n+k, p[k:]
	}
	return n, nil
}

// Close waits until everything is written and returns w's first error.
func (a *asyncWriter) Close() error {
	close(a.full)
	<-a.done
	return a.failed()
}

// readAhead reads r on a goroutine of its own, a few buffers ahead of its reader. Close
// stops it (and must be called).
type readAhead struct {
	full chan chunk
	free chan []byte
	stop chan struct{}
	done chan struct{}
	cur  chunk
}

// chunk is a buffer read, or the read's error.
type chunk struct {
	b   []byte
	off int
	err error
}

func newReadAhead(r io.Reader) *readAhead {
	ra := &readAhead{full: make(chan chunk, stageBuffers), free: make(chan []byte, stageBuffers), stop: make(chan struct{}), done: make(chan struct{})}
	for range stageBuffers {
		ra.free <- make([]byte, stageBufferSize)
	}
	go ra.run(r)
	return ra
}

func (ra *readAhead) run(r io.Reader) {
	defer close(ra.done)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(r, b)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		if n > 0 {
			ra.full <- chunk{b: b[:n]}
		}
		if err != nil {
			ra.full <- chunk{err: err}
			return
		}
	}
}

// Read returns what the goroutine read, in order, then its error (io.EOF at the end).
func (ra *readAhead) Read(p []byte) (int, error) {
	if err := ra.next(); err != nil {
		return 0, err
	}
	n := copy(p, ra.cur.b[ra.cur.off:])
	ra.cur.off += n
	return n, nil
}

// WriteTo writes each buffer the goroutine read to w as it is, so that io.Copy does not copy
// it through a buffer of its own first.
func (ra *readAhead) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if err := ra.next(); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
		k, err := w.Write(ra.cur.b[ra.cur.off:])
		n += int64(k)
		ra.cur.off += k
		if err != nil {
			return n, err
		}
	}
}

// next makes ra.cur hold unread bytes, handing the spent buffer back to the goroutine, or
// returns the read's error (io.EOF at the end).
func (ra *readAhead) next() error {
	if ra.cur.off < len(ra.cur.b) {
		return nil
	}
	if ra.cur.b != nil {
		ra.free <- ra.cur.b[:cap(ra.cur.b)]
		ra.cur = chunk{}
	}
	if ra.cur.err != nil {
		return ra.cur.err
	}
	c, ok := <-ra.full
	if !ok {
		return io.EOF
	}
	if c.err != nil {
		ra.cur.err = c.err
		return c.err
	}
	ra.cur = c
	return nil
}

// Close stops the goroutine and waits for it.
func (ra *readAhead) Close() error {
	close(ra.stop)
	for {
		select {
		case <-ra.done:
			return nil
		case <-ra.full: // unblock a send
		}
	}
}
