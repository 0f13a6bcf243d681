package workers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// pieceExport reads one piece of a model (a pk range) into w, returning its rows and the
// warnings of the values it had to change.
type pieceExport func(ctx context.Context, i int, w io.Writer) (rows int64, warnings []string, err error)

// orderedPieces reads the pieces of one model's export with several readers at once, each
// into a buffer of its own, and writes the buffers in piece order into one output: every
// byte of the fixture is written once, by one writer, which hashes it on the way. A model
// in one piece is read straight into the output.
type orderedPieces struct {
	// n is the number of pieces; name(i) names piece i in errors.
	n    int
	name func(i int) string
	read pieceExport
	// sep is written between two non-empty pieces (fixture.Format.Sep).
	sep string
	// parallel readers; window bounds the pieces read or being read but not yet written
	// (each holds a buffer), so memory is about window pieces whatever the model's size.
	parallel, window int
}

// pieceReaders is how many pieces of one export are read at once: every core, at least two
// (one reads while the other's buffer is written).
func pieceReaders() int { return max(2, runtime.GOMAXPROCS(0)) }

// piece is the outcome of reading one piece.
type piece struct {
	rows     int64
	warnings []string
	buf      *bytes.Buffer
	err      error
}

// pieceJob is a piece to read, with the buffer it is read into.
type pieceJob struct {
	i   int
	buf *bytes.Buffer
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
	done := make([]chan piece, p.n)
	for i := range done {
		done[i] = make(chan piece, 1)
	}
	window := max(p.window, p.parallel, 1)
	free := make(chan *bytes.Buffer, window)
	for range window {
		free <- new(bytes.Buffer)
	}
	jobs := make(chan pieceJob)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.feed(ctx, free, jobs)
	}()
	for range max(p.parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.buf.Reset()
				rows, warnings, err := p.read(ctx, j.i, j.buf)
				done[j.i] <- piece{rows: rows, warnings: warnings, buf: j.buf, err: err}
			}
		}()
	}
	return p.write(ctx, out, done, free)
}

// feed hands out the pieces in order, each with a free buffer: buffers go to pieces in piece
// order, so the next piece to write always has one and the window always moves.
func (p *orderedPieces) feed(ctx context.Context, free <-chan *bytes.Buffer, jobs chan<- pieceJob) {
	defer close(jobs)
	for i := range p.n {
		var buf *bytes.Buffer
		select {
		case buf = <-free:
		case <-ctx.Done():
			return
		}
		select {
		case jobs <- pieceJob{i: i, buf: buf}:
		case <-ctx.Done():
			return
		}
	}
}

// write waits for each piece in turn and writes it, then gives its buffer back.
func (p *orderedPieces) write(ctx context.Context, out io.Writer, done []chan piece, free chan<- *bytes.Buffer) (rows int64, warnings []string, err error) {
	wrote := false
	for i := range p.n {
		var pc piece
		select {
		case pc = <-done[i]:
		case <-ctx.Done():
			return rows, nil, p.fail(i, ctx.Err())
		}
		if pc.err != nil {
			return rows, nil, p.fail(i, pc.err)
		}
		rows += pc.rows
		warnings = append(warnings, pc.warnings...)
		if pc.buf.Len() > 0 {
			if wrote {
				if _, err := io.WriteString(out, p.sep); err != nil {
					return rows, nil, p.fail(i, err)
				}
			}
			if _, err := out.Write(pc.buf.Bytes()); err != nil {
				return rows, nil, p.fail(i, err)
			}
			wrote = true
		}
		free <- pc.buf // never blocks: there are as many buffers as room
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
