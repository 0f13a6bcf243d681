package storage

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// create returns a Writer that buffers one part at a time: an object that fits in one part
// goes up in a single PutObject at Commit; a larger one becomes a multipart upload whose
// parts go up while the caller writes, at most concurrency parts (buffers) at once, so
// memory stays flat in the object's size. Nothing is visible before Commit completes the
// upload; Abort aborts it, which discards the parts.
func (d *s3Driver) create(ctx context.Context, key string, attrs Object) (Writer, error) {
	pctx, cancel := context.WithCancel(ctx)
	return &s3Writer{d: d, ctx: ctx, pctx: pctx, cancel: cancel, key: d.full(key), rel: key, meta: metadata(attrs),
		maxBufs: d.concurrency}, nil
}

// holdFewerParts limits the writer to two part buffers, one filling while the other uploads,
// whatever the concurrency: Bucket.PutLowMemory's streams trade upload speed for memory.
func (w *s3Writer) holdFewerParts() { w.maxBufs = min(w.maxBufs, 2) }

type s3Writer struct {
	d      *s3Driver
	ctx    context.Context // the caller's, for Commit
	pctx   context.Context // for part uploads, cancelled by Abort or a failed part
	cancel context.CancelFunc
	key    string // the full key, under the driver's root
	rel    string // the key in the bucket
	meta   map[string]string
	buf    []byte // the part being filled
	done   bool

	uploadID *string
	nparts   int32
	size     int64       // bytes sent as parts
	sum      hash.Hash   // SHA-256 of those bytes, to recognise the object if a complete's answer is lost
	bufs     int         // part buffers made so far, at most maxBufs
	maxBufs  int         // part buffers this writer may hold: concurrency, or fewer (holdFewerParts)
	free     chan []byte // part buffers back from finished uploads
	wg       sync.WaitGroup
	mu       sync.Mutex
	parts    []types.CompletedPart
	err      error
}

func (w *s3Writer) alg() types.ChecksumAlgorithm {
	if w.d.checksum {
		return types.ChecksumAlgorithmSha256
	}
	return ""
}

// partSize grows with the part number so that 10,000 parts reach far beyond
// 10,000 × part_size: it doubles every 2,000 parts (8 MiB parts reach about 500 GB).
func (w *s3Writer) partSize(n int32) int {
	return int(w.d.partSize) << min((n-1)/2000, 4)
}

func (w *s3Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("write to a closed writer")
	}
	written := 0
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return written, err
		}
		limit := w.partSize(w.nparts + 1)
		if len(w.buf) == limit {
			// Full, and more is coming: send it as a part.
			if err := w.flush(); err != nil {
				return written, err
			}
			limit = w.partSize(w.nparts + 1)
		}
		if w.buf == nil && w.nparts > 0 {
			if err := w.take(limit); err != nil {
				return written, err
			}
		}
		k := min(len(p), limit-len(w.buf))
		if need := len(w.buf) + k; need > cap(w.buf) {
			// The first part grows as needed, so small objects cost small buffers.
			// Double up to a quarter part, then take a whole part: little garbage either way.
			c := max(2*cap(w.buf), need, 64<<10)
			if c > limit/4 {
				c = limit
			}
			nb := make([]byte, len(w.buf), c)
			copy(nb, w.buf)
			w.buf = nb
		}
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		written += k
	}
	return written, nil
}

// take gets a buffer for the next part, waiting for an upload to finish when all
// maxBufs buffers are out.
func (w *s3Writer) take(size int) error {
	var b []byte
	if w.bufs < w.maxBufs {
		select {
		case b = <-w.free:
		default:
			w.bufs++
		}
	} else {
		select {
		case b = <-w.free:
		case <-w.pctx.Done():
			if err := w.failed(); err != nil {
				return err
			}
			return w.pctx.Err()
		}
	}
	if cap(b) < size {
		b = make([]byte, 0, size)
	}
	w.buf = b[:0]
	return nil
}

// flush uploads w.buf as the next part, starting the multipart upload on the first one.
func (w *s3Writer) flush() error {
	if w.uploadID == nil {
		out, err := w.d.createUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket:            aws.String(w.d.bucket),
			Key:               aws.String(w.key),
			Metadata:          w.meta,
			ChecksumAlgorithm: w.alg(),
		})
		if err != nil {
			return fmt.Errorf("start multipart upload: %w", err)
		}
		w.uploadID = out.UploadId
		w.sum = sha256.New()
		w.free = make(chan []byte, w.d.concurrency)
		w.bufs = 1 // the one being flushed
	}
	if w.nparts == maxParts {
		return fmt.Errorf("object larger than %d parts; raise part_size", maxParts)
	}
	w.nparts++
	num, buf := w.nparts, w.buf
	w.size += int64(len(buf))
	w.sum.Write(buf)
	w.buf = nil
	w.wg.Go(func() {
		defer func() { w.free <- buf[:0] }()
		out, err := w.d.client.UploadPart(w.pctx, &s3.UploadPartInput{
			Bucket:            aws.String(w.d.bucket),
			Key:               aws.String(w.key),
			UploadId:          w.uploadID,
			PartNumber:        aws.Int32(num),
			Body:              bytes.NewReader(buf),
			ContentLength:     aws.Int64(int64(len(buf))),
			ChecksumAlgorithm: w.alg(),
		})
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("upload part %d: %w", num, err)
				w.cancel()
			}
			return
		}
		w.parts = append(w.parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
	})
	return nil
}

func (w *s3Writer) Commit() error {
	if w.done {
		return errors.New("commit: writer already closed")
	}
	w.done = true
	defer w.cancel()
	if w.uploadID == nil {
		_, err := w.d.client.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket:            aws.String(w.d.bucket),
			Key:               aws.String(w.key),
			Body:              bytes.NewReader(w.buf),
			ContentLength:     aws.Int64(int64(len(w.buf))),
			Metadata:          w.meta,
			ChecksumAlgorithm: w.alg(),
		})
		w.buf = nil
		return err
	}
	if err := w.failed(); err == nil && len(w.buf) > 0 {
		if err := w.flush(); err != nil {
			w.abort()
			return err
		}
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		w.abort()
		return err
	}
	slices.SortFunc(w.parts, func(a, b types.CompletedPart) int { return cmp.Compare(*a.PartNumber, *b.PartNumber) })
	_, err := w.d.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(w.d.bucket),
		Key:             aws.String(w.key),
		UploadId:        w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	})
	if err != nil && noSuchUpload(err) && w.d.completedAnyway(w.ctx, w.rel, w.size, w.parts, hex.EncodeToString(w.sum.Sum(nil))) {
		// An earlier try completed the upload; only its answer was lost.
		slog.DebugContext(w.ctx, "S3 multipart upload completed by a try whose answer was lost", "bucket", w.d.bucket, "key", w.key)
		err = nil
	}
	if err != nil {
		w.abort()
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	w.d.uploadDone(w.key, w.uploadID)
	return nil
}

func (w *s3Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.cancel()
	w.wg.Wait()
	w.buf = nil
	return w.abort()
}

// abort discards the multipart upload's parts, even when the caller's context is done.
func (w *s3Writer) abort() error {
	w.cancel()
	w.wg.Wait()
	if w.uploadID == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), w.d.abortTimeout())
	defer cancel()
	_, err := w.d.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(w.d.bucket), Key: aws.String(w.key), UploadId: w.uploadID,
	})
	w.d.uploadDone(w.key, w.uploadID)
	if err != nil {
		slog.WarnContext(w.ctx, "abort S3 multipart upload", "bucket", w.d.bucket, "key", w.key, "err", err)
		return fmt.Errorf("abort multipart upload: %w", err)
	}
	return nil
}
