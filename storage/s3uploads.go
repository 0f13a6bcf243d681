package storage

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// uploads are the multipart uploads this process has open, by bucket and full key, and the
// creations of uploads in flight. A CreateMultipartUpload whose answer is lost is retried by
// the SDK and the upload the lost answer named is left behind, invisible and never
// completed: orphans finds it among the key's uploads as one that no writer of this process
// owns.
var uploads = struct {
	sync.Mutex
	open     map[string]map[string]bool // bucket/key → upload ids
	creating map[string]int             // bucket/key → creations in flight
}{open: map[string]map[string]bool{}, creating: map[string]int{}}

// createUpload starts a multipart upload of the full key fullKey and registers it; it aborts
// what an earlier, unanswered try of the same call left behind.
func (d *s3Driver) createUpload(ctx context.Context, in *s3.CreateMultipartUploadInput) (*s3.CreateMultipartUploadOutput, error) {
	id := d.bucket + "/" + aws.ToString(in.Key)
	uploads.Lock()
	uploads.creating[id]++
	uploads.Unlock()
	start := time.Now()
	out, err := d.client.CreateMultipartUpload(ctx, in)
	uploads.Lock()
	defer uploads.Unlock()
	uploads.creating[id]--
	if uploads.creating[id] == 0 {
		delete(uploads.creating, id)
	}
	if err != nil {
		return nil, err
	}
	if uploads.open[id] == nil {
		uploads.open[id] = map[string]bool{}
	}
	uploads.open[id][aws.ToString(out.UploadId)] = true
	if res, ok := retry.GetAttemptResults(out.ResultMetadata); ok && len(res.Results) > 1 && uploads.creating[id] == 0 {
		// Held under the lock: no other creation for the key is in flight, and every upload
		// of this process is registered, so an unknown one started since is the orphan.
		d.abortOrphans(ctx, aws.ToString(in.Key), uploads.open[id], start.Add(-5*time.Second))
	}
	return out, nil
}

// uploadDone forgets an upload once completed or aborted.
func (d *s3Driver) uploadDone(fullKey string, uploadID *string) {
	id := d.bucket + "/" + fullKey
	uploads.Lock()
	defer uploads.Unlock()
	delete(uploads.open[id], aws.ToString(uploadID))
	if len(uploads.open[id]) == 0 {
		delete(uploads.open, id)
	}
}

// abortOrphans aborts the uploads of fullKey started since that are not in known. Another
// process writing the same key within those seconds would lose its upload and retry; this
// tool's writers of one key write the same bytes, so nothing is lost but the time.
func (d *s3Driver) abortOrphans(ctx context.Context, fullKey string, known map[string]bool, since time.Time) {
	out, err := d.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(d.bucket), Prefix: aws.String(fullKey),
		EncodingType: types.EncodingTypeUrl, // as in walkSpecial: XML cannot carry every key
	})
	if err != nil {
		slog.WarnContext(ctx, "list S3 multipart uploads to find an orphan", "bucket", d.bucket, "key", fullKey, "err", err)
		return
	}
	for _, u := range out.Uploads {
		key, err := listedKey(out.EncodingType, aws.ToString(u.Key))
		if err != nil || key != fullKey || known[aws.ToString(u.UploadId)] || aws.ToTime(u.Initiated).Before(since) {
			continue
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.abortTimeout())
		_, err = d.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: aws.String(d.bucket), Key: aws.String(fullKey), UploadId: u.UploadId})
		cancel()
		if err != nil {
			slog.WarnContext(ctx, "abort an orphaned S3 multipart upload", "bucket", d.bucket, "key", fullKey, "upload", aws.ToString(u.UploadId), "err", err)
		}
	}
}
