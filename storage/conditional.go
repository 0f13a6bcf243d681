package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Precondition makes a write happen only if the object under its key is as expected, checked
// by the service in the same step as the write: what lets processes on different machines
// that share only a bucket agree on who holds something (objectlock).
type Precondition struct {
	// Absent writes only if no object has the key (S3's If-None-Match: *).
	Absent bool
	// ETag writes only if the object has this entity tag (S3's If-Match).
	ETag string
}

// ErrPrecondition is a conditional write refused because the object was not as its
// Precondition required (S3's 412).
var ErrPrecondition = errors.New("the object is not as the write's condition required")

// ErrNoConditionalWrites is a conditional write that the bucket cannot make: a local folder,
// or an S3-compatible service that does not implement conditional writes.
var ErrNoConditionalWrites = errors.New("the storage does not support conditional writes")

// conditionalPutter is a driver that can write an object conditionally.
type conditionalPutter interface {
	putIf(ctx context.Context, key string, data []byte, pre Precondition) (etag string, err error)
	statClock(ctx context.Context, key string) (Object, time.Time, error)
}

// PutIf writes data under key if pre holds, and returns the new object's ETag.
func (b *Bucket) PutIf(ctx context.Context, key string, data []byte, pre Precondition) (string, error) {
	if err := b.checkKey(key); err != nil {
		return "", err
	}
	if pre.Absent == (pre.ETag != "") {
		// Neither would be a plain write that looks conditional; both can never hold.
		return "", fmt.Errorf("write %s in %s: a conditional write needs exactly one condition (absent, or an ETag)", key, b)
	}
	cp, ok := b.drv.(conditionalPutter)
	if !ok {
		return "", fmt.Errorf("write %s in %s: %w", key, b, ErrNoConditionalWrites)
	}
	etag, err := cp.putIf(ctx, key, data, pre)
	if err != nil {
		return "", fmt.Errorf("write %s in %s: %w", key, b, err)
	}
	return etag, nil
}

// StatClock is Stat, with the time on the service's clock when it answered: what an object's
// LastModified is compared with, whatever this machine's clock says (zero when the service
// sent no Date). Only buckets that write conditionally have it.
func (b *Bucket) StatClock(ctx context.Context, key string) (Object, time.Time, error) {
	if err := b.checkKey(key); err != nil {
		return Object{}, time.Time{}, err
	}
	cp, ok := b.drv.(conditionalPutter)
	if !ok {
		return Object{}, time.Time{}, fmt.Errorf("stat %s in %s: %w", key, b, ErrNoConditionalWrites)
	}
	o, now, err := cp.statClock(ctx, key)
	if err != nil {
		return Object{}, time.Time{}, fmt.Errorf("stat %s in %s: %w", key, b, err)
	}
	return o, now, nil
}

func (d *s3Driver) putIf(ctx context.Context, key string, data []byte, pre Precondition) (string, error) {
	in := &s3.PutObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(d.full(key)),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))}
	if pre.Absent {
		in.IfNoneMatch = aws.String("*")
	}
	if pre.ETag != "" {
		in.IfMatch = aws.String(`"` + pre.ETag + `"`)
	}
	out, err := d.client.PutObject(ctx, in)
	switch {
	case err == nil:
		return etag(out.ETag), nil
	case httpStatus(err) == http.StatusPreconditionFailed, httpStatus(err) == http.StatusConflict:
		// 409: AWS's answer to two conditional writes of one key at once; one of them lost.
		return "", fmt.Errorf("%w: %w", ErrPrecondition, err)
	case notImplemented(err):
		return "", fmt.Errorf("%w: %w", ErrNoConditionalWrites, err)
	}
	return "", s3Err(err)
}

// notImplemented is an S3 answer that the request's headers are not supported.
func notImplemented(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented" {
		return true
	}
	return httpStatus(err) == http.StatusNotImplemented
}

func (d *s3Driver) statClock(ctx context.Context, key string) (Object, time.Time, error) {
	out, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(d.full(key))})
	if err != nil {
		return Object{}, time.Time{}, s3Err(err)
	}
	o := objectFrom(key, aws.ToInt64(out.ContentLength), aws.ToTime(out.LastModified), out.Metadata)
	o.ETag = etag(out.ETag)
	return o, serverDate(out.ResultMetadata), nil
}

// serverDate is the Date header of the response behind md (zero without one).
func serverDate(md middleware.Metadata) time.Time {
	raw, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response)
	if !ok {
		return time.Time{}
	}
	t, err := http.ParseTime(raw.Header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	return t
}
