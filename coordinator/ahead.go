package coordinator

import (
	"context"
	"time"
)

// ahead runs a producer on a goroutine of its own, a few batches ahead of its consumer: the
// two take two cores at once (a walk's or an lstat's system calls on one, the planning on
// the other), while memory holds no more than the batches in the channel.
type ahead[T any] struct {
	batches chan []T
	batch   []T // what the consumer has not read of the current batch
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // the producer's, set before batches and done close
	// waited is how long the consumer waited for a batch: the part not overlapped.
	waited time.Duration
}

// startAhead starts produce, whose emit hands items on in batches of size through a channel
// of depth batches; emit fails once the consumer has stopped.
func startAhead[T any](ctx context.Context, size, depth int, produce func(ctx context.Context, emit func(T) error) error) *ahead[T] {
	ctx, cancel := context.WithCancel(ctx)
	a := &ahead[T]{batches: make(chan []T, depth), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		defer close(a.batches)
		send := func(b []T) error {
			select {
			case a.batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		batch := make([]T, 0, size)
		err := produce(ctx, func(item T) error {
			if batch = append(batch, item); len(batch) < size {
				return nil
			}
			err := send(batch)
			batch = make([]T, 0, size)
			return err
		})
		if err == nil && len(batch) > 0 {
			err = send(batch)
		}
		a.err = err
	}()
	return a
}

// next returns the producer's next item, waiting for it; false once the producer has ended,
// with its error.
func (a *ahead[T]) next() (T, bool, error) {
	if len(a.batch) == 0 {
		start := time.Now()
		b, ok := <-a.batches
		a.waited += time.Since(start)
		if !ok {
			var none T
			return none, false, a.err
		}
		a.batch = b
	}
	item := a.batch[0]
	a.batch = a.batch[1:]
	return item, true, nil
}

// stop ends the producer, if it still runs, and waits for it.
func (a *ahead[T]) stop() {
	a.cancel()
	for range a.batches { // until the producer has seen the cancellation
	}
	<-a.done
}
