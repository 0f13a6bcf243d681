package archive

import (
	"io"
	"sync/atomic"
)

// pipe compresses what the tar writer writes into a packed member on goroutines of their
// own: the bytes are cut into chunks, each compressed on its own as one whole gzip member or
// zstd frame by one of several packers at once, and written out in order by one more
// goroutine. Reading and hashing a file's next bytes overlap compressing the bytes before
// them, and one task's compressible files use every core: a large part of text compressed on
// one core is what the last task of a backup otherwise waits for. Readers see one stream
// (members and frames are read one after the other), and a chunk of 256 KiB costs little
// ratio: deflate looks back 32 KiB.
type pipe struct {
	packers []packFunc // one per packing goroutine
	jobs    chan *chunk
	order   chan *chunk // the chunks in the order they were cut
	free    chan *chunk // chunks written, to fill again
	ack     chan error  // the writer's first error, as it ends
	cur     *chunk      // the chunk being filled
	failed  atomic.Pointer[error]
	running bool
}

// packFunc compresses src as one whole member (frame) appended to dst.
type packFunc func(dst, src []byte) ([]byte, error)

// chunk is one piece of a member's bytes and what it compressed to.
type chunk struct {
	in, out []byte
	err     error
	done    chan struct{}
}

const pipeChunk = 256 << 10 // bytes compressed at once

// start runs the packers and the writer, writing into w, until stop.
func (q *pipe) start(w io.Writer) {
	if q.free == nil {
		n := len(q.packers) + 2 // one being filled, one being written, one per packer
		q.free = make(chan *chunk, n)
		q.ack = make(chan error)
		for range n {
			q.free <- &chunk{in: make([]byte, 0, pipeChunk)}
		}
	}
	q.jobs = make(chan *chunk, cap(q.free))
	q.order = make(chan *chunk, cap(q.free))
	q.failed.Store(nil)
	q.cur = <-q.free
	q.running = true
	for _, pack := range q.packers {
		go q.pack(pack)
	}
	go q.write(w)
}

func (q *pipe) pack(pack packFunc) {
	for c := range q.jobs {
		c.out, c.err = pack(c.out[:0], c.in)
		close(c.done)
	}
}

// write writes the chunks out in order; after an error it only recycles them, so that a
// writer never waits forever.
func (q *pipe) write(w io.Writer) {
	var err error
	for c := range q.order {
		<-c.done
		if err == nil {
			err = c.err
			if err == nil {
				_, err = w.Write(c.out)
			}
			if err != nil {
				q.failed.Store(&err)
			}
		}
		c.in = c.in[:0]
		q.free <- c
	}
	q.ack <- err
}

// submit hands the filled chunk over to the packers and to the writer.
func (q *pipe) submit() {
	c := q.cur
	c.done = make(chan struct{})
	q.order <- c
	q.jobs <- c
	q.cur = nil
}

// Write buffers p, handing each full chunk over; an error met by a packer or the writer is
// returned here as soon as it is known, so that a failing destination stops the reading early.
func (q *pipe) Write(p []byte) (int, error) {
	if e := q.failed.Load(); e != nil {
		return 0, *e
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(q.cur.in)-len(q.cur.in))
		q.cur.in = append(q.cur.in, p[:k]...)
		p = p[k:]
		if len(q.cur.in) == cap(q.cur.in) {
			q.submit()
			q.cur = <-q.free
		}
	}
	return n, nil
}

// stop hands over what is buffered, waits until all of it is written and ends the
// goroutines; it returns the first error. Without running goroutines it does nothing.
func (q *pipe) stop() error {
	if !q.running {
		return nil
	}
	q.running = false
	if len(q.cur.in) > 0 {
		q.submit()
	} else {
		q.free <- q.cur
		q.cur = nil
	}
	close(q.order)
	close(q.jobs)
	return <-q.ack
}
