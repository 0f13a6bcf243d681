package storage

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// noSuchUpload reports whether err is S3's answer for an upload id it does not know: after a
// CompleteMultipartUpload retried because its answer was lost, that is the answer to the
// retry of a complete that succeeded.
func noSuchUpload(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}

// completedAnyway checks, after a complete answered NoSuchUpload, whether the object under key
// is the one the upload made: its size, then its multipart ETag (what S3 and most compatible
// services compute from the parts' ETags) or, failing that and when sum (the hex SHA-256 of
// the bytes written) is known, its content.
func (d *s3Driver) completedAnyway(ctx context.Context, key string, size int64, parts []types.CompletedPart, sum string) bool {
	head, err := d.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(d.full(key))})
	if err != nil || aws.ToInt64(head.ContentLength) != size {
		return false
	}
	if etag := multipartETag(parts); etag != "" && strings.Trim(aws.ToString(head.ETag), `"`) == etag {
		return true
	}
	if sum == "" {
		return false
	}
	// Read through the driver's reader, which resumes a read that stalls or breaks.
	r, _, err := d.open(ctx, key)
	if err != nil {
		return false
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		slog.WarnContext(ctx, "read back an S3 object to check its upload", "bucket", d.bucket, "key", key, "err", err)
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
}

// multipartETag is the ETag S3 gives an object completed from parts: the MD5 of the parts'
// MD5s, a dash and the number of parts ("" when a part's ETag is not an MD5).
func multipartETag(parts []types.CompletedPart) string {
	h := md5.New()
	for _, p := range parts {
		b, err := hex.DecodeString(strings.Trim(aws.ToString(p.ETag), `"`))
		if err != nil || len(b) != md5.Size {
			return ""
		}
		h.Write(b)
	}
	return fmt.Sprintf("%s-%d", hex.EncodeToString(h.Sum(nil)), len(parts))
}
