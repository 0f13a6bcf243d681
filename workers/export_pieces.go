package workers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// pieceExport reads one piece of a model (a pk range) into w, returning its rows and the
// warnings of the values it had to change.
type pieceExport func(ctx context.Context, i int, w io.Writer) (rows int64, warnings []string, err error)

// orderedPieces reads the pieces of one model's export with several readers at once and
// writes them in piece order into one output, by one writer at a time, which hashes each byte
// as it is written: the piece at the head of the order streams straight into the output, the
// pieces after it are read into buffers of their own, written when their turn comes.
type orderedPieces struct {
	// n is the number of pieces; name(i) names piece i in errors.
	n    int
	name func(i int) string
	read pieceExport
	// sep is written between two non-empty pieces (fixture.Format.Sep).
	sep string
	// parallel readers; window bounds the pieces read or being read but not yet written
	// (each but the head holds a buffer), so memory is about window pieces whatever the
	// model's size.
	parallel, window int
	// budget bounds the bytes buffered at once (0: no bound). Pieces are planned from an
	// estimated row width; a piece that would outgrow the budget (rows far wider than the
	// estimate) is dropped and read again when it is the head, straight into the output, so
	// memory stays bounded whatever the rows hold.
	budget int64
}

// pieceBudget is the bytes an export buffers at most (orderedPieces.budget): several times
// the planned pieces' size, so that it only bounds pieces far off their plan.
var pieceBudget int64 = 16 << 20

// errPieceDropped is what a piece's buffer answers once the piece outgrew the budget.
var errPieceDropped = errors.New("piece dropped: it outgrew the export's buffer budget; it is read again when its turn comes")

// pieceReaders is how many pieces of one export are read at once: every core, at least two
// (one streams into the output while the other fills a buffer).
func pieceReaders() int { return max(2, runtime.GOMAXPROCS(0)) }

// piece is the outcome of reading one piece.
type piece struct {
	rows     int64
	warnings []string
	err      error
	// dropped: the piece outgrew the budget before its turn; it is to be read again.
	dropped bool
}

// run reads every piece and writes them in order to out: the objects of the non-empty pieces
// separated by sep, without brackets. The first piece that fails stops the others and names
// itself in the error.
func (p *orderedPieces) run(ctx context.Context, out io.Writer) (rows int64, warnings []string, err error) {
	if p.n == 1 {
		rows, warnings, err = p.read(ctx, 0, out)
		if err != nil {
			return rows, nil, p.fail(0, err)
		}
		return rows, warnings, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	o := &orderedOut{w: out, sep: p.sep, budget: p.budget}
	done := make([]chan piece, p.n)
	writers := make([]*pieceWriter, p.n)
	for i := range done {
		done[i] = make(chan piece, 1)
		writers[i] = &pieceWriter{out: o}
	}
	window := max(p.window, p.parallel, 1)
	free := make(chan *blockBuffer, window)
	for range window {
		free <- new(blockBuffer)
	}
	jobs := make(chan int)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.feed(ctx, free, writers, jobs)
	}()
	for range max(p.parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				rows, warnings, err := p.read(ctx, i, writers[i])
				done[i] <- piece{rows: rows, warnings: warnings, err: err, dropped: errors.Is(err, errPieceDropped)}
			}
		}()
	}
	return p.write(ctx, writers, done, free)
}

// feed hands out the pieces in order, each with a free buffer: buffers go to pieces in piece
// order, so the head piece always has one and the window always moves.
func (p *orderedPieces) feed(ctx context.Context, free <-chan *blockBuffer, writers []*pieceWriter, jobs chan<- int) {
	defer close(jobs)
	for i := range p.n {
		select {
		case buf := <-free:
			writers[i].give(buf)
		case <-ctx.Done():
			return
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			return
		}
	}
}

// write makes each piece in turn the head: what it buffered is written, then it streams
// into the output until it is read whole; its buffer then goes back.
func (p *orderedPieces) write(ctx context.Context, writers []*pieceWriter, done []chan piece, free chan<- *blockBuffer) (rows int64, warnings []string, err error) {
	for i := range p.n {
		if err := writers[i].promote(); err != nil {
			return rows, nil, p.fail(i, err)
		}
		var pc piece
		select {
		case pc = <-done[i]:
		case <-ctx.Done():
			return rows, nil, p.fail(i, ctx.Err())
		}
		if pc.dropped {
			// The piece is the head now: read again, it streams into the output.
			pc.rows, pc.warnings, pc.err = p.read(ctx, i, writers[i])
		}
		if pc.err != nil {
			return rows, nil, p.fail(i, pc.err)
		}
		rows += pc.rows
		warnings = append(warnings, pc.warnings...)
		buf := writers[i].buf // the reader is done with it
		buf.Reset()
		free <- buf // never blocks: there are as many buffers as room
	}
	return rows, warnings, nil
}

// fail names piece i in err.
func (p *orderedPieces) fail(i int, err error) error {
	if p.n == 1 {
		return err
	}
	return fmt.Errorf("piece %d of %d %s: %w", i+1, p.n, p.name(i), err)
}

// orderedOut is the output the pieces are written to in turn, each begun with sep when an
// earlier piece wrote objects. Only the head piece writes to it, so it needs no lock: the
// handover from one head to the next goes through the piece's done channel and the next
// piece's lock.
type orderedOut struct {
	w   io.Writer
	sep string
	// buffered counts the bytes the pieces after the head hold, against budget (0: none).
	buffered atomic.Int64
	budget   int64
	// wrote: an earlier piece wrote objects; begun: the head piece has written some.
	wrote, begun bool
}

func (o *orderedOut) write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if !o.begun {
		if o.wrote {
			if _, err := io.WriteString(o.w, o.sep); err != nil {
				return 0, err
			}
		}
		o.begun, o.wrote = true, true
	}
	return o.w.Write(p)
}

// pieceWriter is what one piece is read into: its buffer until the piece becomes the head,
// the output from then on.
type pieceWriter struct {
	out *orderedOut
	mu  sync.Mutex
	buf *blockBuffer
	// head: the piece's bytes go straight to out. dropped: it outgrew the budget, its
	// buffer was emptied and it takes no more bytes until it is the head.
	head, dropped bool
}

func (w *pieceWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.head:
		return w.out.write(p)
	case w.dropped:
		return 0, errPieceDropped
	}
	if b := w.out.budget; b > 0 && w.out.buffered.Add(int64(len(p))) > b {
		w.out.buffered.Add(-int64(len(p)) - w.buf.n)
		w.buf.Reset()
		w.dropped = true
		return 0, errPieceDropped
	}
	return w.buf.Write(p)
}

// give hands the piece the buffer it is read into until it is the head.
func (w *pieceWriter) give(buf *blockBuffer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = buf
}

// promote makes the piece the head: it writes what the piece buffered so far, and the
// piece's later writes go to the output.
func (w *pieceWriter) promote() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.begun = false
	w.head = true
	if w.buf == nil {
		return nil
	}
	defer func() {
		w.out.buffered.Add(-w.buf.n)
		w.buf.Reset()
	}()
	for _, b := range w.buf.blocks {
		if _, err := w.out.write(*b); err != nil {
			return err
		}
	}
	return nil
}

// pieceBlock is the size of the blocks a piece is buffered in: what a fixture writer hands
// over at once. Blocks go back to a pool shared by every export of the process, so buffering
// allocates nothing once the first pieces are read, and holds only the bytes buffered.
const pieceBlock = 64 << 10

var pieceBlocks = sync.Pool{New: func() any { b := make([]byte, 0, pieceBlock); return &b }}

// blockBuffer holds a piece's bytes in pooled blocks (a growing slice would copy them and
// leave the smaller copies behind as garbage).
type blockBuffer struct {
	blocks []*[]byte
	// n is the number of bytes held.
	n int64
}

func (b *blockBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.n += int64(n)
	for len(p) > 0 {
		if len(b.blocks) == 0 || len(*b.blocks[len(b.blocks)-1]) == pieceBlock {
			b.blocks = append(b.blocks, pieceBlocks.Get().(*[]byte))
		}
		last := b.blocks[len(b.blocks)-1]
		k := copy((*last)[len(*last):pieceBlock], p)
		*last = (*last)[:len(*last)+k]
		p = p[k:]
	}
	return n, nil
}

// Reset gives the blocks back to the pool.
func (b *blockBuffer) Reset() {
	for i, blk := range b.blocks {
		*blk = (*blk)[:0]
		pieceBlocks.Put(blk)
		b.blocks[i] = nil
	}
	b.blocks = b.blocks[:0]
	b.n = 0
}
