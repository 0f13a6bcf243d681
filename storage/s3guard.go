package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// A request's transfer is guarded against peers that keep it alive without moving it. The
// read timeout alone is a rolling deadline on each read: a server that sends one byte a second,
// or stops reading an upload (the write blocks; no timeout covers it), held a task for ever.
// Each window of the timeout spent waiting on the network must move transferFloor bytes;
// time the tool itself spends (producing an upload, consuming a download) does not count, so
// a slow reader on our side is never mistaken for a slow peer.

// transferFloor is the fewest bytes a guarded transfer must move per window of the timeout
// (64 KiB in the default 2 minutes: about 550 bytes a second, far below any working link).
const transferFloor = 64 << 10

// maxStalledAttempts bounds the attempts of a request, or of a read, that end in a timeout
// or a stalled transfer: a peer that did not answer three times in a row will not answer the
// tenth, and ten timeouts of two minutes each were twenty minutes of silence.
const maxStalledAttempts = 3

// stallError is a guarded transfer that moved fewer than transferFloor bytes in a window.
// It is a timeout (net.Error), so that it is retried like one, up to maxStalledAttempts.
type stallError struct {
	window time.Duration
	what   string
}

func (e *stallError) Error() string {
	return fmt.Sprintf("S3 %s stalled: fewer than %d bytes moved in %s (the timeout)", e.what, transferFloor, e.window)
}

// Timeout marks the stall as a timeout, for the SDK's retryer and for isTimeout.
func (e *stallError) Timeout() bool { return true }

// Temporary marks the stall as worth another attempt.
func (e *stallError) Temporary() bool { return true }

// isTimeout tells an error that is a timeout or a stall: retried at most maxStalledAttempts
// times.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// guardedClient guards the requests it sends: each until its response's headers (the request
// and its body sent, the answer awaited), and a GET's response body while it is read.
type guardedClient struct {
	next   aws.HTTPClient
	window time.Duration
}

// Do sends req with its transfer guarded.
func (g guardedClient) Do(req *http.Request) (*http.Response, error) {
	if g.window <= 0 {
		return g.next.Do(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &transferWatch{window: g.window, cancel: cancel}
	req = req.WithContext(ctx)
	w.what = "request"
	if req.Body != nil && req.Body != http.NoBody {
		w.what = "upload"
		req.Body = &sentBody{ReadCloser: req.Body, w: w}
		if getBody := req.GetBody; getBody != nil {
			// The transport sends a rewound body on a fresh connection: watched the same.
			req.GetBody = func() (io.ReadCloser, error) {
				b, err := getBody()
				if err != nil {
					return nil, err
				}
				return &sentBody{ReadCloser: b, w: w}, nil
			}
		}
	}
	w.begin() // sending the request, then awaiting the response's headers
	w.arm()
	resp, err := g.next.Do(req)
	w.end(0)
	if err != nil {
		w.stop()
		cancel(nil)
		if s := w.stalled(); s != nil {
			return nil, s
		}
		return nil, err
	}
	if req.Method != http.MethodGet {
		// Responses to other requests may rightly trickle (S3 keeps a long server-side copy's
		// connection alive with spaces): only the read timeout watches them.
		w.stop()
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	w.watching("download")
	resp.Body = &receivedBody{body: resp.Body, w: w, cancel: cancel}
	return resp, nil
}

// transferWatch is the clock of one guarded transfer: network time and bytes moved since the
// last checkpoint, which is taken each time transferFloor bytes have moved.
type transferWatch struct {
	window time.Duration
	what   string
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	waiting bool      // the network is being awaited now
	since   time.Time // when the current wait began
	waited  time.Duration
	moved   int64
	timer   *time.Timer
	done    bool
	fired   *stallError
}

// begin starts a wait on the network.
func (w *transferWatch) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.waiting {
		w.waiting, w.since = true, time.Now()
	}
}

// end ends a wait on the network that moved n bytes.
func (w *transferWatch) end(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waiting {
		w.waited += time.Since(w.since)
		w.waiting = false
	}
	if w.moved += int64(n); w.moved >= transferFloor {
		w.waited, w.moved = 0, 0
	}
}

// checksPerWindow is how often a window is checked: a stall is cut within 1/8 window of it.
const checksPerWindow = 8

// watching names what the watch now watches, for its stall's message.
func (w *transferWatch) watching(what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.what = what
}

// arm checks the watch checksPerWindow times a window until stop.
func (w *transferWatch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer == nil && !w.done {
		w.timer = time.AfterFunc(w.window/checksPerWindow, w.check)
	}
}

// check cancels the request once a window of network time has moved too little.
func (w *transferWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	waited := w.waited
	if w.waiting {
		waited += time.Since(w.since)
	}
	if waited >= w.window {
		w.fired = &stallError{window: w.window, what: w.what}
		w.done = true
		w.cancel(w.fired)
		return
	}
	w.timer.Reset(w.window / checksPerWindow)
}

// stop ends the watch.
func (w *transferWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// stalled is the stall that cancelled the request, if one did.
func (w *transferWatch) stalled() *stallError {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired
}

// sentBody is an upload's body: the time the transport spends in Read is ours (producing the
// bytes), the time between reads is the network's (writing them).
type sentBody struct {
	io.ReadCloser
	w *transferWatch
}

func (b *sentBody) Read(p []byte) (int, error) {
	b.w.end(0)
	n, err := b.ReadCloser.Read(p)
	b.w.end(n)
	b.w.begin()
	return n, err
}

// receivedBody is a download's body: the time in Read is the network's.
type receivedBody struct {
	body   io.ReadCloser
	w      *transferWatch
	cancel context.CancelCauseFunc
}

func (b *receivedBody) Read(p []byte) (int, error) {
	b.w.begin()
	n, err := b.body.Read(p)
	b.w.end(n)
	if err != nil {
		if s := b.w.stalled(); s != nil {
			return n, s
		}
		if err == io.EOF {
			b.w.stop()
		}
	}
	return n, err
}

func (b *receivedBody) Close() error {
	b.w.stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}

// cancelOnClose releases a request's context when its response body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
