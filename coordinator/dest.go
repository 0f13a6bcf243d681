package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// destination is where a backup is staged while it runs and how it is published: a hidden
// staging area that workers write into, made visible under backup_YYYYMMDD_HHMMSS only once
// complete (metadata last), and removed on failure.
type destination interface {
	// Location is what tasks get as their Dest.
	Location() string
	// Bucket is the staging area.
	Bucket() *storage.Bucket
	// Sweep removes temporary files a killed worker may have left in the staging area.
	Sweep() error
	// Publish makes the staged backup visible and returns where it is.
	Publish(ctx context.Context, start time.Time, compress bool, opts ...archive.Option) (string, error)
	// Abort removes the staging area (nothing after a publish).
	Abort() error
	Close()
}

// openDestination opens or (resume) reopens a run's staging area in backupDir, a local folder
// or an s3:// location.
func openDestination(ctx context.Context, backupDir, run string, resume bool) (destination, error) {
	if storage.IsS3(backupDir) {
		return openS3Destination(ctx, backupDir, run, resume)
	}
	if err := os.MkdirAll(backupDir, 0o755); err != nil {
		return nil, fmt.Errorf("destination %s: %w", backupDir, err)
	}
	if resume {
		if _, err := os.Stat(layout.StagingPath(backupDir, run)); err != nil {
			return nil, fmt.Errorf("its staging folder is gone: %w", err)
		}
	}
	stage, err := layout.NewStaging(backupDir, run)
	if err != nil {
		return nil, err
	}
	b, err := storage.Open(ctx, stage.Path())
	if err != nil {
		stage.Abort()
		return nil, err
	}
	return &localDestination{stage: stage, bucket: b}, nil
}

type localDestination struct {
	stage  *layout.Staging
	bucket *storage.Bucket
}

func (d *localDestination) Location() string        { return d.stage.Path() }
func (d *localDestination) Bucket() *storage.Bucket { return d.bucket }
func (d *localDestination) Sweep() error            { return removeTempFiles(d.stage.Path()) }
func (d *localDestination) Abort() error            { return d.stage.Abort() }
func (d *localDestination) Close()                  { d.bucket.Close() }

func (d *localDestination) Publish(ctx context.Context, start time.Time, compress bool, opts ...archive.Option) (string, error) {
	if !compress {
		return d.stage.PublishDir(start)
	}
	return d.stage.PublishArchive(start, func(w io.Writer, top string) error {
		_, err := archive.Write(ctx, w, d.stage.Path(), top, opts...)
		return err
	})
}

// s3Destination stages under <prefix>/.wnb-staging-<run>/ and publishes by server-side copies
// into <prefix>/backup_…/ (metadata last), or by streaming a tar.gz into <prefix>/backup_….tar.gz
// (one multipart upload, visible only when complete).
type s3Destination struct {
	base, location string
	staging        string // the staging area's key prefix in root
	root, bucket   *storage.Bucket
	published      bool
}

func openS3Destination(ctx context.Context, backupDir, run string, resume bool) (*s3Destination, error) {
	root, err := storage.Open(ctx, backupDir)
	if err != nil {
		return nil, err
	}
	staging := layout.StagingPrefix + run
	if resume {
		if n, err := countUnder(ctx, root, staging+"/", 1); err != nil || n == 0 {
			root.Close()
			return nil, fmt.Errorf("its staging area %s is gone", storage.Join(backupDir, staging))
		}
	}
	loc := storage.Join(backupDir, staging)
	b, err := storage.Open(ctx, loc)
	if err != nil {
		root.Close()
		return nil, err
	}
	return &s3Destination{base: backupDir, location: loc, staging: staging, root: root, bucket: b}, nil
}

func (d *s3Destination) Location() string        { return d.location }
func (d *s3Destination) Bucket() *storage.Bucket { return d.bucket }
func (d *s3Destination) Sweep() error            { return nil } // S3 objects appear whole or not at all
func (d *s3Destination) Close()                  { d.bucket.Close(); d.root.Close() }

func (d *s3Destination) Abort() error {
	if d.published {
		return nil
	}
	return d.root.RemoveAll(context.Background(), d.staging)
}

func (d *s3Destination) Publish(ctx context.Context, start time.Time, compress bool, opts ...archive.Option) (string, error) {
	var objs []storage.Object
	if err := d.bucket.Walk(ctx, "", func(o storage.Object) error { objs = append(objs, o); return nil }); err != nil {
		return "", err
	}
	name, err := d.freeName(ctx, start, compress)
	if err != nil {
		return "", err
	}
	if compress {
		w, err := d.root.Create(ctx, name+layout.ArchiveExt, storage.Object{Mode: 0o644})
		if err != nil {
			return "", err
		}
		defer w.Abort()
		aobjs := make([]archive.Object, len(objs))
		for i, o := range objs {
			st, err := d.bucket.Stat(ctx, o.Key) // Walk has no modes on S3; Stat reads them
			if err != nil {
				return "", err
			}
			aobjs[i] = archive.Object{Key: o.Key, Size: st.Size, Mode: st.Mode, ModTime: st.ModTime}
		}
		if _, err := archive.WriteObjects(ctx, w, name, aobjs, func(key string) (io.ReadCloser, error) {
			r, _, err := d.bucket.Open(ctx, key)
			return r, err
		}, opts...); err != nil {
			return "", err
		}
		if err := w.Commit(); err != nil {
			return "", err
		}
		name += layout.ArchiveExt
	} else {
		// Metadata last: until it is copied, the new prefix is an incomplete backup.
		var meta *storage.Object
		for i, o := range objs {
			if o.Key == layout.FileMetadata {
				meta = &objs[i]
				continue
			}
			if err := copyWithin(ctx, d.root, d.bucket, o.Key, name+"/"+o.Key); err != nil {
				return "", err
			}
		}
		if meta == nil {
			return "", errors.New("publish: the staged backup has no metadata")
		}
		if err := copyWithin(ctx, d.root, d.bucket, meta.Key, name+"/"+meta.Key); err != nil {
			return "", err
		}
	}
	d.published = true
	if err := d.root.RemoveAll(ctx, d.staging); err != nil {
		return storage.Join(d.base, name), fmt.Errorf("published, but removing the staging area failed: %w", err)
	}
	return storage.Join(d.base, name), nil
}

// freeName is backup_YYYYMMDD_HHMMSS, or with -2, -3... when a backup has that name already.
func (d *s3Destination) freeName(ctx context.Context, t time.Time, compress bool) (string, error) {
	base := layout.Name(t)
	for seq := 1; seq < 1000; seq++ {
		name := base
		if seq > 1 {
			name = fmt.Sprintf("%s-%d", base, seq)
		}
		_, errA := d.root.Stat(ctx, name+layout.ArchiveExt)
		n, errD := countUnder(ctx, d.root, name+"/", 1)
		if errD != nil {
			return "", errD
		}
		if errors.Is(errA, storage.ErrNotExist) && n == 0 {
			return name, nil
		}
	}
	return "", fmt.Errorf("no free backup name for %s", base)
}

// copyWithin copies an object from the staging bucket to the root bucket: server-side where
// possible, else streamed.
func copyWithin(ctx context.Context, dst, src *storage.Bucket, from, to string) error {
	_, err := dst.CopyFrom(ctx, src, from, to)
	if !errors.Is(err, storage.ErrNoServerSideCopy) {
		return err
	}
	r, obj, err := src.Open(ctx, from)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = dst.Put(ctx, to, r, obj)
	return err
}

var errEnough = errors.New("enough")

// countUnder counts objects under prefix, stopping at limit.
func countUnder(ctx context.Context, b *storage.Bucket, prefix string, limit int) (int, error) {
	n := 0
	err := b.Walk(ctx, prefix, func(storage.Object) error {
		n++
		if n >= limit {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return n, err
}
