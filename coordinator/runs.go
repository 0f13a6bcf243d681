package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	kv, err := c.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		return nil, fmt.Errorf("open run registry: %w", err)
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("no run %q in the registry (see `webnovel-backup runs`)", id)
	} else if err != nil {
		return nil, fmt.Errorf("read run %s: %w", id, err)
	}
	return messages.DecodeRun(e.Value())
}

// tracker keeps a run's record current while the run goes on.
type tracker struct {
	kv   jetstream.KeyValue
	mu   sync.Mutex
	rec  messages.RunRecord
	stop chan struct{}
	done chan struct{}
}

// track records a run as running and refreshes its heartbeat until finish.
func (c *Coordinator) track(ctx context.Context, rec messages.RunRecord) (*tracker, error) {
	kv, err := c.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		return nil, fmt.Errorf("open run registry: %w", err)
	}
	host, _ := os.Hostname()
	rec.Version, rec.State = messages.Version, messages.RunRunning
	rec.Coordinator = fmt.Sprintf("%s pid %d", host, os.Getpid())
	rec.Heartbeat = time.Now().UTC()
	t := &tracker{kv: kv, rec: rec, stop: make(chan struct{}), done: make(chan struct{})}
	if err := t.put(ctx); err != nil {
		return nil, err
	}
	go func() {
		defer close(t.done)
		tick := time.NewTicker(messages.RunHeartbeat)
		defer tick.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tick.C:
				t.mu.Lock()
				t.rec.Heartbeat = time.Now().UTC()
				t.mu.Unlock()
				if err := t.put(context.Background()); err != nil {
					c.log.Warn("refresh run record", "run", rec.ID, "err", err)
				}
			}
		}
	}()
	return t, nil
}

func (t *tracker) update(f func(r *messages.RunRecord)) {
	t.mu.Lock()
	f(&t.rec)
	t.mu.Unlock()
}

func (t *tracker) put(ctx context.Context) error {
	t.mu.Lock()
	data, err := messages.Marshal(&t.rec)
	id := t.rec.ID
	t.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := t.kv.Put(ctx, id, data); err != nil {
		return fmt.Errorf("record run %s: %w", id, err)
	}
	return nil
}

// finish records the outcome: complete with its path, or failed with the error.
func (t *tracker) finish(path string, runErr error) {
	close(t.stop)
	<-t.done
	t.update(func(r *messages.RunRecord) {
		r.Finished = time.Now().UTC()
		r.Heartbeat = r.Finished
		if runErr != nil {
			r.State, r.Error = messages.RunFailed, runErr.Error()
		} else {
			r.State, r.Path = messages.RunComplete, path
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.put(ctx)
}
