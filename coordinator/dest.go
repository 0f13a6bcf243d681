package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// destination is where a backup is staged while it runs and how it is published: a hidden
// staging area that workers write into, made visible under backup_YYYYMMDD_HHMMSS only once
// complete (metadata last), and removed when a new run fails.
type destination interface {
	// Location is what tasks get as their Dest.
	Location() string
	// Bucket is the staging area.
	Bucket() *storage.Bucket
	// Sweep removes temporary files a killed worker may have left in the staging area.
	Sweep() error
	// Publish makes the staged backup visible, without the run's working files, and returns
	// where it is. Publishing again after a crash finishes the job.
	Publish(ctx context.Context, p publishOptions) (string, error)
	// Abort removes the staging area (nothing after a publish).
	Abort() error
	Close()
}

// publishOptions say how to publish a staged backup.
type publishOptions struct {
	start    time.Time
	compress bool
	// name is the backup name a killed predecessor started to publish under, if any.
	name string
	// named is told the chosen name before anything is written under it, so that a resume
	// can finish a publish that was cut short.
	named   func(ctx context.Context, name string) error
	archive []archive.Option
	// archived, if set, is told the bytes of each archive part as it is published, and
	// archiveTotal the bytes of all of them before the first.
	archived     func(n int64)
	archiveTotal func(n int64)
	// seal, when set, encrypts the archive (age) and adds its sidecar.
	seal *archiveSeal
	// body, when set, is the archive built while the run copied (local destinations).
	body *archiveBody
}

// stagingLocation is where run's staging area is in backupDir (what its tasks get as Dest).
func stagingLocation(backupDir, run string) string {
	if storage.IsS3(backupDir) {
		return storage.Join(backupDir, layout.StagingPrefix+run)
	}
	return layout.StagingPath(backupDir, run)
}

// openDestination opens a run's staging area in backupDir, a local folder or an s3://
// location, creating it or reopening what a previous generation of the run left.
func openDestination(ctx context.Context, backupDir, run string) (destination, error) {
	if storage.IsS3(backupDir) {
		return openS3Destination(ctx, backupDir, run)
	}
	if err := os.MkdirAll(backupDir, layout.DirMode); err != nil {
		return nil, fmt.Errorf("destination %s: %w", redact.URL(backupDir), err)
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
	return &localDestination{stage: stage, bucket: b, backupDir: backupDir, run: run}, nil
}

type localDestination struct {
	stage          *layout.Staging
	bucket         *storage.Bucket
	backupDir, run string
}

func (d *localDestination) Location() string        { return d.stage.Path() }
func (d *localDestination) Bucket() *storage.Bucket { return d.bucket }
func (d *localDestination) Sweep() error {
	_, err := removeTempFiles(d.stage.Path(), time.Time{})
	return err
}
func (d *localDestination) Abort() error { return d.stage.Abort() }
func (d *localDestination) Close()       { d.bucket.Close() }

// Publish renames the staging folder (or archives it) after removing the run's working
// files. A crash before the rename leaves a staging folder a resume publishes again.
func (d *localDestination) Publish(ctx context.Context, p publishOptions) (string, error) {
	if p.compress {
		return d.publishArchive(ctx, p)
	}
	if err := d.bucket.RemoveAll(ctx, internalDir); err != nil {
		return "", fmt.Errorf("remove working files: %w", err)
	}
	halt(ctx, "publish")
	return d.stage.PublishDir(p.start)
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

func openS3Destination(ctx context.Context, backupDir, run string) (*s3Destination, error) {
	root, err := storage.Open(ctx, backupDir)
	if err != nil {
		return nil, err
	}
	staging := layout.StagingPrefix + run
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

// Publish copies the staged backup to its name, metadata last, so until the end the new
// prefix is an incomplete backup (no metadata), or streams it into one archive object. The
// name is recorded (p.named) before the first copy; a resume gets it back as p.name and
// finishes the same prefix (copies are idempotent) instead of leaving it half published.
func (d *s3Destination) Publish(ctx context.Context, p publishOptions) (string, error) {
	objs, err := d.stagedObjects(ctx)
	if err != nil {
		return "", err
	}
	name := p.name
	if name == "" && p.compress {
		if name, err = d.archiveName(ctx); err != nil {
			return "", err
		}
	}
	if name == "" {
		if name, err = d.freeName(ctx, p.start); err != nil {
			return "", err
		}
	}
	if p.named != nil {
		if err := p.named(ctx, name); err != nil {
			return "", fmt.Errorf("record the backup's name: %w", err)
		}
	}
	if p.compress {
		name, err = d.publishArchive(ctx, name, objs, p)
	} else {
		err = d.publishCopies(ctx, name, objs)
	}
	if err != nil {
		return "", err
	}
	d.published = true
	halt(ctx, "unstage")
	if err := d.root.RemoveAll(ctx, d.staging); err != nil {
		return storage.Join(d.base, name), fmt.Errorf("published, but removing the staging area failed: %w", err)
	}
	return storage.Join(d.base, name), nil
}

// stagedObjects lists the staging area without the run's working files.
func (d *s3Destination) stagedObjects(ctx context.Context) ([]storage.Object, error) {
	var objs []storage.Object
	err := d.bucket.Walk(ctx, "", func(o storage.Object) error {
		if !strings.HasPrefix(o.Key, internalDir+"/") {
			objs = append(objs, o)
		}
		return nil
	})
	return objs, err
}

// streamArchive streams the staged objects into name.tar.gz.
func (d *s3Destination) streamArchive(ctx context.Context, name string, objs []storage.Object, opts []archive.Option) error {
	w, err := d.root.Create(ctx, name+layout.ArchiveExt, storage.Object{Mode: layout.FileMode})
	if err != nil {
		return err
	}
	defer w.Abort()
	aobjs := make([]archive.Object, len(objs))
	for i, o := range objs {
		st, err := d.bucket.Stat(ctx, o.Key) // Walk has no modes on S3; Stat reads them
		if err != nil {
			return err
		}
		aobjs[i] = archive.Object{Key: o.Key, Size: st.Size, Mode: st.Mode, ModTime: st.ModTime}
	}
	if _, err := archive.WriteObjects(ctx, w, name, aobjs, func(key string) (io.ReadCloser, error) {
		r, _, err := d.bucket.Open(ctx, key)
		return r, err
	}, opts...); err != nil {
		return err
	}
	return w.Commit()
}

// publishCopies copies the staged objects under name/, the metadata last: until it is
// copied, the new prefix is an incomplete backup.
func (d *s3Destination) publishCopies(ctx context.Context, name string, objs []storage.Object) error {
	var meta *storage.Object
	copied := 0
	for i, o := range objs {
		if o.Key == layout.FileMetadata {
			meta = &objs[i]
			continue
		}
		if err := copyWithin(ctx, d.root, d.bucket, o.Key, name+"/"+o.Key); err != nil {
			return err
		}
		if copied++; copied == len(objs)/2 {
			halt(ctx, "publish")
		}
	}
	if meta == nil {
		return errors.New("publish: the staged backup has no metadata")
	}
	return copyWithin(ctx, d.root, d.bucket, meta.Key, name+"/"+meta.Key)
}

// freeName is the name a folder backup started at t is published under.
func (d *s3Destination) freeName(ctx context.Context, t time.Time) (string, error) {
	return freeBackupName(ctx, d.root, d.base, t)
}

// copyWithin copies an object from the staging bucket to the root bucket: server-side where
// possible, else streamed.
func copyWithin(ctx context.Context, dst, src *storage.Bucket, from, to string) error {
	return dst.Transfer(ctx, src, from, to, nil)
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
