package archive

import (
	"io"
	"sync/atomic"
)

// pipe hands what the tar writer writes into a compressed member to a goroutine that
// compresses it, so that reading and hashing a file's next bytes overlap compressing the
// bytes before them: without it a task keeps one core busy at a time, and the last tasks of
// a backup leave the other core idle.
type pipe struct {
	full    chan []byte // chunks to compress; nil asks the goroutine to report and end
	free    chan []byte // chunks written, to fill again
	ack     chan error  // the goroutine's first write error, as it ends
	cur     []byte      // the chunk being filled
	failed  atomic.Pointer[error]
	running bool
}

const (
	pipeChunk  = 256 << 10 // bytes handed over at once: few enough hand-overs to cost nothing
	pipeChunks = 3         // chunks in flight: one filled, one compressed, one spare
)

// start runs the goroutine writing into w (the member's compressor) until stop.
func (q *pipe) start(w io.Writer) {
	if q.full == nil {
		q.full = make(chan []byte, pipeChunks)
		q.free = make(chan []byte, pipeChunks)
		q.ack = make(chan error)
		for range pipeChunks {
			q.free <- make([]byte, 0, pipeChunk)
		}
	}
	q.failed.Store(nil)
	q.cur = <-q.free
	q.running = true
	go q.run(w)
}

func (q *pipe) run(w io.Writer) {
	var err error
	for b := range q.full {
		if b == nil {
			q.ack <- err
			return
		}
		if err == nil {
			if _, err = w.Write(b); err != nil {
				q.failed.Store(&err)
			}
		}
		q.free <- b[:0] // after a failure too, so that a writer never waits forever
	}
}

// Write buffers p, handing each full chunk over; an error the goroutine met is returned here
// as soon as it is known, so that a failing destination stops the reading early.
func (q *pipe) Write(p []byte) (int, error) {
	if e := q.failed.Load(); e != nil {
		return 0, *e
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(q.cur)-len(q.cur))
		q.cur = append(q.cur, p[:k]...)
		p = p[k:]
		if len(q.cur) == cap(q.cur) {
			q.full <- q.cur
			q.cur = <-q.free
		}
	}
	return n, nil
}

// stop hands over what is buffered, waits until all of it is written and ends the goroutine;
// it returns the first write error. Without a running goroutine it does nothing.
func (q *pipe) stop() error {
	if !q.running {
		return nil
	}
	q.running = false
	if len(q.cur) > 0 {
		q.full <- q.cur
	} else {
		q.free <- q.cur
	}
	q.cur = nil
	q.full <- nil
	return <-q.ack
}
