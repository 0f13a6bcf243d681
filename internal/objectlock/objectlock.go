// Package objectlock keeps a lock as an object in a bucket that processes on different
// machines share: a lease its holder renews, taken and handed over with the service's
// conditional writes (storage.PutIf), so two of them cannot both hold it. A holder that dies
// leaves the object behind; once it has not been renewed for StaleAfter, by the service's own
// clock, the next taker takes it over with a warning that names the old holder.
package objectlock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/webnovel/webnovel-backup/storage"
)

// Defaults for Options.
const (
	DefaultRenew      = 30 * time.Second
	DefaultStaleAfter = 5 * time.Minute
)

// maxBody bounds what is read of a lock object: a few hundred bytes of JSON.
const maxBody = 64 << 10

// Holder says who holds a lock, for the operator: no secrets.
type Holder struct {
	Run   string    `json:"run,omitempty"`
	Host  string    `json:"host,omitempty"`
	PID   int       `json:"pid,omitempty"`
	Since time.Time `json:"since"`
	// Renewed is when the holder last wrote the lock. It changes the object's bytes, and so
	// its ETag, on every renewal: a takeover conditioned on an older ETag fails.
	Renewed time.Time `json:"renewed"`
}

// String names the holder in an error or a warning. Anyone who can write the bucket can
// write the object, so its fields are shown bounded and quoted if not printable: a terminal
// escape in a lock object never reaches the operator's terminal as one.
func (h Holder) String() string {
	s := "run " + shown(h.Run)
	if h.Run == "" {
		s = "a process"
	}
	if h.Host != "" {
		s += " on " + shown(h.Host)
	}
	if h.PID != 0 {
		s += fmt.Sprintf(" (pid %d)", h.PID)
	}
	if !h.Since.IsZero() {
		s += " since " + h.Since.UTC().Format(time.RFC3339)
	}
	return s
}

// maxShown bounds each field String shows.
const maxShown = 100

func shown(v string) string {
	if len(v) > maxShown {
		v = v[:maxShown] + "…"
	}
	return storage.QuoteKey(v)
}

// Options are how a lock is taken and kept.
type Options struct {
	// Holder names the taker (Since is set by Take).
	Holder Holder
	// Renew is how often the holder rewrites the object (DefaultRenew when 0).
	Renew time.Duration
	// StaleAfter is how long an object may go unrenewed before another taker takes it over
	// (DefaultStaleAfter when 0).
	StaleAfter time.Duration
	// Lost, if set, is called once if the lock stops being this holder's: taken over, or not
	// renewed for StaleAfter. The holder must stop what the lock guards.
	Lost func(error)
}

func (o *Options) defaults() {
	if o.Renew <= 0 {
		o.Renew = DefaultRenew
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
}

// ErrLocked is a lock another holder has (LockedError says who).
var ErrLocked = errors.New("another process holds the lock")

// LockedError is a lock held by someone else.
type LockedError struct {
	Key    string
	Holder Holder
	// Age is how long ago the holder last renewed it.
	Age time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is held by %s, renewed %s ago", e.Key, e.Holder, e.Age.Round(time.Second))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// State is a lock object as found.
type State struct {
	Holder Holder
	// Age is the time since the object was last written, by the service's clock.
	Age time.Duration
	// Stale is an object older than the StaleAfter it was checked with.
	Stale bool
	etag  string
}

// Check reads the lock object under key: nil, nil when there is none.
func Check(ctx context.Context, b *storage.Bucket, key string, staleAfter time.Duration) (*State, error) {
	if staleAfter <= 0 {
		staleAfter = DefaultStaleAfter
	}
	obj, now, err := b.StatClock(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if now.IsZero() {
		now = time.Now()
	}
	st := &State{Age: max(now.Sub(obj.LastModified), 0), etag: obj.ETag}
	st.Stale = st.Age > staleAfter
	st.Holder = readHolder(ctx, b, key)
	return st, nil
}

// readHolder reads who the object names; one that does not say names nobody, with a
// warning, since only the object's age decides anything.
func readHolder(ctx context.Context, b *storage.Bucket, key string) Holder {
	h, err := holderOf(ctx, b, key)
	if err != nil {
		slog.Warn("a lock object does not say who holds it", "key", key, "err", err)
	}
	return h
}

func holderOf(ctx context.Context, b *storage.Bucket, key string) (Holder, error) {
	r, _, err := b.Open(ctx, key)
	if err != nil {
		return Holder{}, err
	}
	defer r.Close()
	data, err := storage.ReadLimited(r, maxBody)
	if err != nil {
		return Holder{}, err
	}
	return parseHolder(data)
}

// parseHolder reads a lock object's body (untrusted: anyone who can write the bucket).
func parseHolder(data []byte) (Holder, error) {
	var h Holder
	if err := json.Unmarshal(data, &h); err != nil {
		return Holder{}, err
	}
	return h, nil
}

// Lock is a held lock. Release lets it go.
type Lock struct {
	b    *storage.Bucket
	key  string
	o    Options
	etag string // of the object as this holder last wrote it

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Take takes the lock under key in b, or returns a *LockedError naming its holder. A lock
// left unrenewed for StaleAfter is taken over, with a warning naming the old holder. A
// bucket that cannot write conditionally yields storage.ErrNoConditionalWrites.
func Take(ctx context.Context, b *storage.Bucket, key string, o Options) (*Lock, error) {
	o.defaults()
	o.Holder.Since = time.Now().UTC().Truncate(time.Second)
	l := &Lock{b: b, key: key, o: o, stop: make(chan struct{}), done: make(chan struct{})}
	// Three tries: a holder that lets go, or a takeover raced by another taker, between
	// one step and the next sends this one round again.
	var last error
	for range 3 {
		etag, err := l.write(ctx, storage.Precondition{Absent: true})
		if err == nil {
			return l.held(etag), nil
		}
		if !errors.Is(err, storage.ErrPrecondition) {
			return nil, fmt.Errorf("take the lock %s: %w", key, err)
		}
		st, err := Check(ctx, b, key, o.StaleAfter)
		if err != nil {
			return nil, fmt.Errorf("take the lock %s: %w", key, err)
		}
		if st == nil {
			continue // let go meanwhile
		}
		last = &LockedError{Key: key, Holder: st.Holder, Age: st.Age}
		if !st.Stale {
			return nil, last
		}
		etag, err = l.write(ctx, storage.Precondition{ETag: st.etag})
		if err == nil {
			slog.Warn("took over a lock its holder stopped renewing", "key", key, "holder", st.Holder.String(),
				"unrenewed_for", st.Age.Round(time.Second).String())
			return l.held(etag), nil
		}
		if !errors.Is(err, storage.ErrPrecondition) {
			return nil, fmt.Errorf("take over the lock %s: %w", key, err)
		}
	}
	if last == nil {
		last = fmt.Errorf("take the lock %s: it was let go and taken again three times meanwhile", key)
	}
	return nil, last
}

// write writes the lock object, stamped now, if pre holds.
func (l *Lock) write(ctx context.Context, pre storage.Precondition) (string, error) {
	h := l.o.Holder
	h.Renewed = time.Now().UTC()
	body, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	return l.b.PutIf(ctx, l.key, body, pre)
}

// held starts renewing the lock written with etag.
func (l *Lock) held(etag string) *Lock {
	l.etag = etag
	go l.renew()
	return l
}

// renew rewrites the object every Renew while it is still this holder's. A lock taken over,
// or not renewed for StaleAfter (the service unreachable: another may take it over by then),
// is lost.
func (l *Lock) renew() {
	defer close(l.done)
	t := time.NewTicker(l.o.Renew)
	defer t.Stop()
	renewed := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.o.Renew)
		etag, err := l.write(ctx, storage.Precondition{ETag: l.etag})
		cancel()
		switch {
		case err == nil:
			l.etag, renewed = etag, time.Now()
			continue
		case errors.Is(err, storage.ErrPrecondition), errors.Is(err, storage.ErrNotExist):
			l.lose(fmt.Errorf("the lock %s was taken over by another process: %w", l.key, err))
			return
		case time.Since(renewed) >= l.o.StaleAfter:
			l.lose(fmt.Errorf("the lock %s could not be renewed for %s: %w", l.key, l.o.StaleAfter, err))
			return
		}
		slog.Warn("could not renew a lock; trying again", "key", l.key, "err", err)
	}
}

func (l *Lock) lose(err error) {
	slog.Error("lost a lock", "key", l.key, "err", err)
	if l.o.Lost != nil {
		l.o.Lost(err)
	}
}

// Release stops renewing the lock and deletes its object if it is still this holder's. It
// works after ctx is cancelled (it has a minute of its own).
func (l *Lock) Release(ctx context.Context) error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	obj, err := l.b.Stat(ctx, l.key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release the lock %s: %w", l.key, err)
	}
	// l.etag is settled: renew has ended.
	if obj.ETag != l.etag {
		return nil // taken over: it is another's now
	}
	if err := l.b.Remove(ctx, l.key); err != nil {
		return fmt.Errorf("release the lock %s: %w", l.key, err)
	}
	return nil
}
