package workers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// piecesBound is how long a pieces run that must end may take.
const piecesBound = 20 * time.Second

// runPieces runs p to completion, failing the test if it does not end within piecesBound.
func runPieces(t *testing.T, ctx context.Context, p *orderedPieces, out io.Writer) (int64, []string, error) {
	t.Helper()
	type ended struct {
		rows  int64
		warns []string
		err   error
	}
	ch := make(chan ended, 1)
	go func() {
		rows, warns, err := p.run(ctx, out)
		ch <- ended{rows, warns, err}
	}()
	select {
	case e := <-ch:
		return e.rows, e.warns, e.err
	case <-time.After(piecesBound):
		t.Fatalf("the pieces run did not end within %s", piecesBound)
		return 0, nil, nil
	}
}

// fakePieces reads piece i as contents[i] in small writes, later pieces sooner than earlier
// ones (so they are buffered while the head streams), one row per object.
func fakePieces(contents []string, parallel, window int) *orderedPieces {
	return &orderedPieces{
		n: len(contents), sep: ",\n", parallel: parallel, window: window,
		name: func(i int) string { return fmt.Sprintf("[%d]", i) },
		read: func(ctx context.Context, i int, w io.Writer) (int64, []string, error) {
			time.Sleep(time.Duration(len(contents)-i) * time.Millisecond)
			c := contents[i]
			for len(c) > 0 {
				k := min(len(c), 3)
				if _, err := io.WriteString(w, c[:k]); err != nil {
					return 0, nil, err
				}
				c = c[k:]
			}
			var warns []string
			if contents[i] != "" {
				warns = []string{"w" + fmt.Sprint(i)}
			}
			return int64(strings.Count(contents[i], "{")), warns, nil
		},
	}
}

// TestOrderedPiecesWriteInPieceOrder: whatever order the pieces are read in, the output is
// the non-empty pieces in piece order, one separator between two of them, as one export of
// the whole range writes it; rows add up and warnings keep the pieces' order.
func TestOrderedPiecesWriteInPieceOrder(t *testing.T) {
	many := make([]string, 40)
	for i := range many {
		if i%3 != 1 {
			many[i] = fmt.Sprintf("{%d}", i)
		}
	}
	for _, tc := range []struct {
		name             string
		pieces           []string
		parallel, window int
	}{
		{"one piece", []string{"{a},\n{b}"}, 2, 4},
		{"all empty", []string{"", "", ""}, 2, 4},
		{"empty first and last", []string{"", "{a}", "{b},\n{c}", ""}, 2, 4},
		{"empty in the middle", []string{"{a}", "", "", "{b}"}, 3, 6},
		{"many pieces, narrow window", many, 2, 2},
		{"many pieces, one reader", many, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			var wantRows int64
			var wantWarns []string
			for i, c := range tc.pieces {
				if c != "" {
					want = append(want, c)
					wantRows += int64(strings.Count(c, "{"))
					wantWarns = append(wantWarns, "w"+fmt.Sprint(i))
				}
			}
			var out bytes.Buffer
			rows, warns, err := runPieces(t, context.Background(), fakePieces(tc.pieces, tc.parallel, tc.window), &out)
			if err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != strings.Join(want, ",\n") {
				t.Errorf("output %q, want %q", got, strings.Join(want, ",\n"))
			}
			if rows != wantRows || strings.Join(warns, " ") != strings.Join(wantWarns, " ") {
				t.Errorf("rows %d warnings %q, want %d %q", rows, warns, wantRows, wantWarns)
			}
		})
	}
}

// TestOrderedPiecesOverBudget: pieces far larger than planned (here: than the whole
// budget) are dropped before their turn and read again as the head, straight into the
// output, which is still every piece once, in order.
func TestOrderedPiecesOverBudget(t *testing.T) {
	pieces := make([]string, 12)
	for i := range pieces {
		pieces[i] = strings.Repeat(fmt.Sprintf("{%d}", i%10), 20+i)
	}
	p := fakePieces(pieces, 3, 6)
	p.budget = 50
	var reads atomic.Int32
	read := p.read
	p.read = func(ctx context.Context, i int, w io.Writer) (int64, []string, error) {
		reads.Add(1)
		return read(ctx, i, w)
	}
	var out bytes.Buffer
	if _, _, err := runPieces(t, context.Background(), p, &out); err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(pieces, ",\n"); out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if reads.Load() <= int32(len(pieces)) {
		t.Errorf("%d reads of %d pieces: none was dropped over the budget", reads.Load(), len(pieces))
	}
}

// TestOrderedPiecesFailingPieceStopsTheRest: a piece that fails fails the run, named with
// its number and range; the pieces still being read are stopped (one waits for its context
// to end: the run would never end otherwise), and nothing after the failed piece is written.
func TestOrderedPiecesFailingPieceStopsTheRest(t *testing.T) {
	boom := errors.New("pk 12 field rating: bad decimal")
	for _, failing := range []int{0, 2, 4} {
		t.Run(fmt.Sprint("piece ", failing+1), func(t *testing.T) {
			var stopped atomic.Int32
			p := &orderedPieces{
				n: 6, sep: ",", parallel: 3, window: 6,
				name: func(i int) string { return fmt.Sprintf("[%d, %d]", 10*i, 10*i+9) },
				read: func(ctx context.Context, i int, w io.Writer) (int64, []string, error) {
					switch {
					case i == failing:
						time.Sleep(20 * time.Millisecond) // the others are under way
						return 0, nil, boom
					case i == failing+1:
						<-ctx.Done()
						stopped.Add(1)
						return 0, nil, ctx.Err()
					}
					_, err := fmt.Fprintf(w, "{%d}", i)
					return 1, nil, err
				},
			}
			var out bytes.Buffer
			_, _, err := runPieces(t, context.Background(), p, &out)
			if !errors.Is(err, boom) {
				t.Fatalf("error %v, want the piece's", err)
			}
			want := fmt.Sprintf("piece %d of 6 [%d, %d]", failing+1, 10*failing, 10*failing+9)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
			if stopped.Load() != 1 {
				t.Error("the piece waiting for its context was not stopped")
			}
			if strings.Contains(out.String(), fmt.Sprintf("{%d}", failing+2)) {
				t.Errorf("output %q holds a piece after the failed one", out.String())
			}
		})
	}
}

// TestOrderedPiecesOutputErrorFails: an output that refuses bytes fails the run with its
// error, whether the head piece streams into it or a buffered piece is written.
func TestOrderedPiecesOutputErrorFails(t *testing.T) {
	full := errors.New("no space left on device")
	p := fakePieces([]string{"{a}", "{b}", "{c}", "{d}"}, 2, 4)
	_, _, err := runPieces(t, context.Background(), p, &failAfter{n: 5, err: full})
	if !errors.Is(err, full) {
		t.Fatalf("error %v, want the output's", err)
	}
}

// TestOrderedPiecesCancelled: cancelling the run's context stops it promptly with the
// context's error, every reader included.
func TestOrderedPiecesCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var waiting atomic.Int32
	p := &orderedPieces{
		n: 8, sep: ",", parallel: 2, window: 4,
		name: func(i int) string { return fmt.Sprint(i) },
		read: func(ctx context.Context, i int, w io.Writer) (int64, []string, error) {
			if waiting.Add(1) == 2 {
				cancel()
			}
			<-ctx.Done()
			return 0, nil, ctx.Err()
		},
	}
	_, _, err := runPieces(t, ctx, p, io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// failAfter accepts n bytes, then fails with err.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, f.err
	}
	f.n -= len(p)
	return len(p), nil
}
