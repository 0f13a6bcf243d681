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
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// open streams an object. The first GetObject returns the size and the kept metadata;
// objects above parallelMin are then read by a window of ranged requests, in order.
// A response that fails or stalls mid-body (the connection's read timeout) is resumed from
// the last byte delivered, pinned to the object's ETag so a concurrent overwrite cannot
// splice two versions together.
func (d *s3Driver) open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(d.full(key))})
	if err != nil {
		return nil, Object{}, s3Err(err)
	}
	size := aws.ToInt64(out.ContentLength)
	obj := objectFrom(key, size, aws.ToTime(out.LastModified), out.Metadata)
	if size > d.parallelMin && size > d.partSize && d.concurrency > 1 {
		return newRangedReader(ctx, d, key, out.ETag, size, out.Body), obj, nil
	}
	return &streamReader{ctx: ctx, d: d, key: key, etag: out.ETag, size: size, body: out.Body}, obj, nil
}

// getRange fetches bytes [off, end] of key, as long as the object still has etag.
func (d *s3Driver) getRange(ctx context.Context, key string, etag *string, off, end int64) (io.ReadCloser, error) {
	rng := fmt.Sprintf("bytes=%d-", off)
	if end >= 0 {
		rng = fmt.Sprintf("bytes=%d-%d", off, end)
	}
	out, err := d.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(d.bucket), Key: aws.String(d.full(key)), Range: aws.String(rng), IfMatch: etag,
	}, func(o *s3.Options) {
		// A range cannot be checked against a whole-object checksum (some servers send one).
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	if err != nil {
		if httpStatus(err) == http.StatusPreconditionFailed {
			return nil, fmt.Errorf("%s changed while being read: %w", key, errPermanent{err})
		}
		return nil, s3Err(err)
	}
	return out.Body, nil
}

// errPermanent marks a failure that retrying cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

func isPermanent(err error) bool {
	var p errPermanent
	return errors.As(err, &p) || errors.Is(err, ErrNotExist)
}

// backoff waits before retry attempt n (1, 2, ...), or until ctx ends.
func backoff(ctx context.Context, n int) error {
	d := min(100*time.Millisecond<<min(n-1, 6), 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// streamReader reads one object sequentially, resuming after a failed or stalled response.
type streamReader struct {
	ctx      context.Context
	d        *s3Driver
	key      string
	etag     *string
	size     int64
	off      int64
	body     io.ReadCloser
	got      int64 // bytes the current response gave
	failures int
	pending  error // the failure of a response that ended with bytes, counted on the next call
	err      error
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if err := r.pending; err != nil {
		r.pending = nil
		if r.err = r.fail(err); r.err != nil {
			return 0, r.err
		}
	}
	for {
		if r.body == nil {
			if r.off >= r.size {
				return 0, io.EOF
			}
			body, err := r.d.getRange(r.ctx, r.key, r.etag, r.off, -1)
			if err != nil {
				if isPermanent(err) || r.ctx.Err() != nil {
					r.err = err
					return 0, err
				}
				if r.err = r.fail(err); r.err != nil {
					return 0, r.err
				}
				continue
			}
			r.body = body
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if r.got += int64(n); r.got >= transferFloor {
			r.failures = 0 // progress: a trickle's few bytes are not
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && r.off == r.size:
			return n, io.EOF
		case r.off >= r.size:
			// All bytes arrived but the response failed at its end (a checksum mismatch,
			// or more bytes than announced): nothing to resume.
			r.err = fmt.Errorf("read %s: %w", r.key, err)
			return n, r.err
		case err == io.EOF:
			err = io.ErrUnexpectedEOF
		}
		r.body.Close()
		r.body, r.got = nil, 0
		if n > 0 {
			r.pending = err
			return n, nil // resume on the next call
		}
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			return 0, r.err
		}
		if r.err = r.fail(err); r.err != nil {
			return 0, r.err
		}
	}
}

// giveUp tells whether a read that failed attempts times in a row, the last with err, ends:
// after maxAttempts, or maxStalledAttempts when err is a timeout.
func giveUp(attempts int, err error) bool {
	return attempts >= maxAttempts || (isTimeout(err) && attempts >= maxStalledAttempts)
}

// fail counts a failure without progress and waits before the next attempt.
func (r *streamReader) fail(err error) error {
	r.failures++
	if giveUp(r.failures, err) {
		return fmt.Errorf("read %s at byte %d: giving up after %d attempts: %w", r.key, r.off, r.failures, err)
	}
	return backoff(r.ctx, r.failures)
}

func (r *streamReader) Close() error {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	return nil
}

// rangedReader reads a large object as consecutive parts fetched by ranged GETs, up to
// concurrency parts at once (buffers included: memory stays at concurrency × partSize), and
// hands them out in order.
type rangedReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	d      *s3Driver
	key    string
	etag   *string
	size   int64

	next  int64   // offset of the next part to schedule
	queue []*part // scheduled, in order
	cur   *part
	pos   int
	free  [][]byte
	wg    sync.WaitGroup
	err   error
}

type part struct {
	off  int64
	buf  []byte
	err  error
	done chan struct{}
}

func newRangedReader(ctx context.Context, d *s3Driver, key string, etag *string, size int64, first io.ReadCloser) *rangedReader {
	ctx, cancel := context.WithCancel(ctx)
	r := &rangedReader{ctx: ctx, cancel: cancel, d: d, key: key, etag: etag, size: size}
	// The response that told us the size serves the first part.
	r.schedule(first)
	r.schedule(nil)
	return r
}

// schedule starts fetching parts until the window is full; first, if set, is a response
// body starting at the next part's offset.
func (r *rangedReader) schedule(first io.ReadCloser) {
	for len(r.queue)+btoi(r.cur != nil) < r.d.concurrency && r.next < r.size {
		n := min(r.d.partSize, r.size-r.next)
		var buf []byte
		if k := len(r.free); k > 0 {
			buf, r.free = r.free[k-1], r.free[:k-1]
		} else {
			buf = make([]byte, r.d.partSize)
		}
		p := &part{off: r.next, buf: buf[:n], done: make(chan struct{})}
		r.next += n
		r.queue = append(r.queue, p)
		body := first
		first = nil
		r.wg.Go(func() { r.fetch(p, body) })
	}
	if first != nil {
		first.Close()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fetch fills p.buf, from body first if given, then by ranged requests for what is missing.
func (r *rangedReader) fetch(p *part, body io.ReadCloser) {
	defer close(p.done)
	n := 0
	var last error
	if body != nil {
		n, last = io.ReadFull(body, p.buf)
		body.Close()
	}
	for attempt := 0; n < len(p.buf); {
		if err := r.ctx.Err(); err != nil {
			p.err = err
			return
		}
		if attempt > 0 {
			if giveUp(attempt, last) {
				p.err = fmt.Errorf("read %s bytes %d-%d: giving up after %d attempts: %w", r.key, p.off, p.off+int64(len(p.buf))-1, attempt, last)
				return
			}
			if err := backoff(r.ctx, attempt); err != nil {
				p.err = err
				return
			}
		}
		attempt++
		rc, err := r.d.getRange(r.ctx, r.key, r.etag, p.off+int64(n), p.off+int64(len(p.buf))-1)
		if err != nil {
			if isPermanent(err) {
				p.err = err
				return
			}
			last = err
			continue
		}
		m, err := io.ReadFull(rc, p.buf[n:])
		rc.Close()
		n += m
		if m >= transferFloor {
			attempt = 1 // progress: start counting failures afresh (a trickle's bytes are not)
		}
		last = err
	}
}

func (r *rangedReader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for r.cur == nil || r.pos == len(r.cur.buf) {
		if r.cur != nil {
			r.free = append(r.free, r.cur.buf[:cap(r.cur.buf)])
			r.cur = nil
			r.schedule(nil)
		}
		if len(r.queue) == 0 {
			return 0, io.EOF
		}
		head := r.queue[0]
		<-head.done
		if head.err != nil {
			r.err = head.err
			return 0, r.err
		}
		r.queue = r.queue[1:]
		r.cur, r.pos = head, 0
		r.schedule(nil)
	}
	n := copy(b, r.cur.buf[r.pos:])
	r.pos += n
	return n, nil
}

func (r *rangedReader) Close() error {
	r.cancel()
	r.wg.Wait()
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	r.queue, r.cur, r.free = nil, nil, nil
	return nil
}
