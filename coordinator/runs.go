package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/messages"
)

// Runs lists the recorded runs, newest first.
func (c *Coordinator) Runs(ctx context.Context) ([]*messages.RunRecord, error) {
	kv, err := c.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		return nil, fmt.Errorf("open run registry: %w", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	var out []*messages.RunRecord
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		r, err := messages.DecodeRun(e.Value())
		if err != nil {
			c.log.Warn("skipping run record", "key", k, "err", err)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.After(out[j].Started) })
	return out, nil
}

// RunRecord reads one run's record.
func (c *Coordinator) RunRecord(ctx context.Context, id string) (*messages.RunRecord, error) {
	rec, _, err := c.runEntry(ctx, id)
	return rec, err
}

// runEntry reads one run's record with its revision, for a compare-and-swap. A missing run's
// error matches jetstream.ErrKeyNotFound.
func (c *Coordinator) runEntry(ctx context.Context, id string) (*messages.RunRecord, uint64, error) {
	kv, err := c.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		return nil, 0, fmt.Errorf("open run registry: %w", err)
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("no run %q in the registry (see `webnovel-backup runs`): %w", id, err)
	} else if err != nil {
		return nil, 0, fmt.Errorf("read run %s: %w", id, err)
	}
	rec, err := messages.DecodeRun(e.Value())
	if err != nil {
		return nil, 0, err
	}
	return rec, e.Revision(), nil
}

// ClaimError is a run another coordinator holds: a resume lost the race for it, or the
// coordinator running it lost its record to a resume.
type ClaimError struct {
	Run string
	// Holder is the coordinator (host and pid) that holds the run.
	Holder string
}

func (e *ClaimError) Error() string {
	return fmt.Sprintf("run %s is held by another coordinator (%s)", e.Run, e.Holder)
}

// tracker keeps a run's record current while the run goes on. Every write is a
// compare-and-swap on the revision it last wrote, so two coordinators can never both believe
// they run the same run: the one whose write is refused has lost it.
type tracker struct {
	kv     jetstream.KeyValue
	queue  *queueHealth
	log    *slog.Logger
	mu     sync.Mutex
	rec    messages.RunRecord
	rev    uint64
	lost   error  // a *ClaimError once another coordinator holds the record
	unsure []byte // the last write, when its outcome is unknown
	cancel context.CancelCauseFunc
	// beating ends when finish stops the heartbeat, cutting short a refresh in flight: finish
	// writes the record itself next, and need not wait for a queue that does not answer.
	beating  context.Context
	stopBeat context.CancelFunc
	done     chan struct{}
}

// coordinatorID names this process in run records.
func coordinatorID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// track claims a run and refreshes its heartbeat until finish. With rev 0 the record must not
// exist yet; otherwise rev is the revision the claimant read, and the claim fails with a
// *ClaimError when another coordinator wrote the record since. The returned context is
// cancelled, with the *ClaimError as its cause, if the record is taken over while the run goes
// on (this coordinator stalled for three heartbeats and a resume claimed the run).
func (c *Coordinator) track(ctx context.Context, rec messages.RunRecord, rev uint64) (*tracker, context.Context, error) {
	kv, err := c.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("open run registry: %w", err)
	}
	rec.Version, rec.State = messages.Version, messages.RunRunning
	rec.Coordinator = coordinatorID()
	rec.Heartbeat = time.Now().UTC()
	runCtx, cancel := context.WithCancelCause(ctx)
	t := &tracker{kv: kv, queue: &c.queue, log: c.log.With("run", rec.ID), rec: rec, rev: rev, cancel: cancel,
		done: make(chan struct{})}
	t.beating, t.stopBeat = context.WithCancel(context.Background())
	if err := t.put(ctx); err != nil {
		cancel(err)
		t.stopBeat()
		return nil, nil, err
	}
	go t.beat()
	return t, runCtx, nil
}

// beat refreshes the heartbeat until finish, and stops the run if its record is taken over.
func (t *tracker) beat() {
	defer close(t.done)
	tick := time.NewTicker(messages.RunHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-t.beating.Done():
			return
		case <-tick.C:
			t.update(func(r *messages.RunRecord) { r.Heartbeat = time.Now().UTC() })
			ctx, cancel := context.WithTimeout(t.beating, t.queue.wait(queueCallWait))
			err := t.put(ctx)
			cancel()
			var lost *ClaimError
			if errors.As(err, &lost) {
				t.log.Error("the run record was taken over; stopping", "holder", lost.Holder)
				t.cancel(lost)
				return
			}
			if err != nil && t.beating.Err() == nil {
				t.log.Warn("refresh run record", "err", err)
			}
		}
	}
}

func (t *tracker) update(f func(r *messages.RunRecord)) {
	t.mu.Lock()
	f(&t.rec)
	t.mu.Unlock()
}

// owned reports whether this coordinator still holds the run's record.
func (t *tracker) owned() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost == nil
}

// put writes the record if this coordinator still holds it.
func (t *tracker) put(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost != nil {
		return t.lost
	}
	data, err := messages.Marshal(&t.rec)
	if err != nil {
		return err
	}
	id := t.rec.ID
	err = t.write(ctx, id, data)
	if refused(err) && t.ownWriteLanded(ctx, id) {
		err = t.write(ctx, id, data)
	}
	if refused(err) {
		t.lost = &ClaimError{Run: id, Holder: holderOf(ctx, t.kv, id)}
		return t.lost
	}
	if err != nil {
		return fmt.Errorf("record run %s: %w", id, err)
	}
	return nil
}

// write creates or updates the record on the revision this coordinator last wrote. A write
// that failed without a refusal (its answer lost, its context ended) may still have landed:
// its bytes are kept for ownWriteLanded.
func (t *tracker) write(ctx context.Context, id string, data []byte) error {
	var rev uint64
	var err error
	if t.rev == 0 {
		rev, err = t.kv.Create(ctx, id, data)
	} else {
		rev, err = t.kv.Update(ctx, id, data, t.rev)
	}
	t.queue.note(err)
	switch {
	case err == nil:
		t.rev, t.unsure = rev, nil
	case !refused(err):
		t.unsure = data
	}
	return err
}

// ownWriteLanded reports whether the record holds, byte for byte, a write of this coordinator
// whose answer was lost (a heartbeat cut short, a reply that timed out), and if so takes its
// revision as its own. Without it, that write would pass for another coordinator's claim. No
// other writer makes the same bytes: each write carries its heartbeat to the nanosecond.
func (t *tracker) ownWriteLanded(ctx context.Context, id string) bool {
	if t.unsure == nil {
		return false
	}
	e, err := t.kv.Get(ctx, id)
	if err != nil || !bytes.Equal(e.Value(), t.unsure) {
		return false
	}
	t.rev, t.unsure = e.Revision(), nil
	return true
}

// refused reports whether a write of the record was refused for its revision: another write
// came first.
func refused(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// holderOf names the coordinator in a run's current record.
func holderOf(ctx context.Context, kv jetstream.KeyValue, id string) string {
	e, err := kv.Get(ctx, id)
	if err != nil {
		return fmt.Sprintf("unknown: %v", err)
	}
	rec, err := messages.DecodeRun(e.Value())
	if err != nil {
		return fmt.Sprintf("unknown: %v", err)
	}
	return fmt.Sprintf("%s, generation %d, %s", rec.Coordinator, rec.Generation, rec.State)
}

// finish records the outcome: complete with its path, or failed with the error. A record
// another coordinator has taken over is left alone.
func (t *tracker) finish(path string, runErr error) {
	t.stopBeat()
	<-t.done
	t.cancel(context.Canceled)
	t.update(func(r *messages.RunRecord) {
		r.Finished = time.Now().UTC()
		r.Heartbeat = r.Finished
		if runErr != nil {
			r.State, r.Error = messages.RunFailed, redact.Text(runErr.Error())
		} else {
			r.State, r.Path, r.Publishing = messages.RunComplete, path, ""
		}
	})
	ctx, cancel := t.queue.context()
	defer cancel()
	if err := t.put(ctx); err != nil {
		t.log.Warn("record the run's outcome", "err", err)
	}
}

// publishing is the backup name a predecessor started to publish, if any.
func (t *tracker) publishing() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rec.Publishing
}

// set changes the record and writes it at once (a phase that a resume must know about).
func (t *tracker) set(ctx context.Context, f func(r *messages.RunRecord)) error {
	t.update(f)
	return t.put(ctx)
}
