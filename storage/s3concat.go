package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// concatMinPart is S3's smallest part but the last one.
const concatMinPart int64 = 5 << 20

// concatSource is one object to concatenate.
type concatSource struct {
	rel  string // key in the bucket
	key  string // full key
	size int64
	etag *string
}

// s3Concat is one concatenation in progress: a multipart upload, and the bytes of small
// sources waiting to fill a part.
type s3Concat struct {
	d        *s3Driver
	key      string
	uploadID *string
	alg      types.ChecksumAlgorithm
	parts    []types.CompletedPart
	pending  bytes.Buffer
}

// concat is Concat on S3: sources of concatMinPart and more are part copies, the smaller
// ones are downloaded and merged with their neighbours into parts of at least that size
// (the first bytes of a large source fill a part a small one started).
func (d *s3Driver) concat(ctx context.Context, dstKey string, srcKeys []string, attrs Object) (Object, error) {
	srcs, total, err := d.concatSources(ctx, srcKeys)
	if err != nil {
		return Object{}, err
	}
	c := &s3Concat{d: d, key: d.full(dstKey)}
	if d.checksum {
		c.alg = types.ChecksumAlgorithmSha256
	}
	up, err := d.createUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(d.bucket), Key: aws.String(c.key), Metadata: metadata(attrs), ChecksumAlgorithm: c.alg,
	})
	if err != nil {
		return Object{}, s3Err(err)
	}
	c.uploadID = up.UploadId
	for _, s := range srcs {
		if err = c.add(ctx, s); err != nil {
			break
		}
	}
	if err == nil {
		err = c.complete(ctx)
	}
	if err != nil {
		c.abort(ctx)
		switch httpStatus(err) {
		case http.StatusBadRequest, http.StatusLengthRequired, http.StatusNotImplemented:
			return Object{}, fmt.Errorf("%w: %v", ErrNoServerSideCopy, err)
		}
		return Object{}, s3Err(err)
	}
	d.uploadDone(c.key, c.uploadID)
	return Object{Key: dstKey, Size: total, Mode: attrs.Mode, ModTime: attrs.ModTime}, nil
}

// concatSources reads the sources' sizes and ETags (a part copy is of that version only).
func (d *s3Driver) concatSources(ctx context.Context, keys []string) ([]concatSource, int64, error) {
	var total int64
	srcs := make([]concatSource, 0, len(keys))
	for _, k := range keys {
		head, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(d.full(k))})
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", k, s3Err(err))
		}
		s := concatSource{rel: k, key: d.full(k), size: aws.ToInt64(head.ContentLength), etag: head.ETag}
		total += s.size
		srcs = append(srcs, s)
	}
	return srcs, total, nil
}

// add appends one source: its start fills the pending part, if any; a rest of concatMinPart
// or more is copied server-side, a smaller one joins the pending bytes.
func (c *s3Concat) add(ctx context.Context, s concatSource) error {
	var off int64
	if c.pending.Len() > 0 {
		off = min(s.size, concatMinPart-int64(c.pending.Len()))
		if err := c.download(ctx, s, 0, off); err != nil {
			return err
		}
		if int64(c.pending.Len()) >= concatMinPart {
			if err := c.flush(ctx); err != nil {
				return err
			}
		}
	}
	rest := s.size - off
	switch {
	case rest == 0:
		return nil
	case rest < concatMinPart:
		if err := c.download(ctx, s, off, s.size); err != nil {
			return err
		}
		if int64(c.pending.Len()) >= concatMinPart {
			return c.flush(ctx)
		}
		return nil
	}
	// Ranges of copyPartSize, the last one merged into its predecessor if it is too small.
	for off < s.size {
		end := min(off+copyPartSize, s.size)
		if s.size-end < concatMinPart {
			end = s.size
		}
		if err := c.copyRange(ctx, s, off, end); err != nil {
			return err
		}
		off = end
	}
	return nil
}

// download appends bytes [from, to) of s to the pending part.
func (c *s3Concat) download(ctx context.Context, s concatSource, from, to int64) error {
	if to <= from {
		return nil
	}
	body, err := c.d.getRange(ctx, s.rel, s.etag, from, to-1)
	if err != nil {
		return err
	}
	defer body.Close()
	n, err := io.Copy(&c.pending, io.LimitReader(body, to-from))
	if err == nil && n != to-from {
		err = fmt.Errorf("read %d of %d bytes of %s", n, to-from, s.key)
	}
	return err
}

// flush uploads the pending bytes as the next part.
func (c *s3Concat) flush(ctx context.Context) error {
	n := int32(len(c.parts) + 1)
	out, err := c.d.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(c.d.bucket), Key: aws.String(c.key), UploadId: c.uploadID, PartNumber: aws.Int32(n),
		Body: bytes.NewReader(c.pending.Bytes()), ContentLength: aws.Int64(int64(c.pending.Len())), ChecksumAlgorithm: c.alg,
	})
	if err != nil {
		return err
	}
	c.pending.Reset()
	c.parts = append(c.parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag, ChecksumSHA256: out.ChecksumSHA256})
	return nil
}

// copyRange copies bytes [from, to) of s server-side as the next part.
func (c *s3Concat) copyRange(ctx context.Context, s concatSource, from, to int64) error {
	n := int32(len(c.parts) + 1)
	out, err := c.d.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
		Bucket: aws.String(c.d.bucket), Key: aws.String(c.key), UploadId: c.uploadID, PartNumber: aws.Int32(n),
		CopySource:        aws.String(copySource(c.d.bucket, s.key)),
		CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", from, to-1)),
		CopySourceIfMatch: s.etag,
	})
	if err != nil {
		return err
	}
	p := types.CompletedPart{PartNumber: aws.Int32(n)}
	if r := out.CopyPartResult; r != nil {
		p.ETag, p.ChecksumSHA256 = r.ETag, r.ChecksumSHA256
	}
	c.parts = append(c.parts, p)
	return nil
}

// complete uploads what is pending as the last part and completes the upload.
func (c *s3Concat) complete(ctx context.Context) error {
	if c.pending.Len() > 0 || len(c.parts) == 0 {
		if err := c.flush(ctx); err != nil {
			return err
		}
	}
	_, err := c.d.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(c.d.bucket), Key: aws.String(c.key), UploadId: c.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: c.parts},
	})
	return err
}

func (c *s3Concat) abort(ctx context.Context) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.d.abortTimeout())
	defer cancel()
	defer c.d.uploadDone(c.key, c.uploadID)
	if _, err := c.d.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(c.d.bucket), Key: aws.String(c.key), UploadId: c.uploadID,
	}); err != nil {
		slog.WarnContext(ctx, "abort S3 concatenation", "bucket", c.d.bucket, "key", c.key, "err", err)
	}
}
