package coordinator

import (
	"context"
	"errors"
	"fmt"
	"path"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A folder backup to S3 keeps its files' content in the destination's object store
// (objects/sha256/ab/<sum>, each content once), not under its own prefix: what did not change
// since an earlier backup is neither downloaded nor uploaded again. The published prefix holds
// the metadata (files.store "objects"), SHA256SUMS (logical files/ paths), restore.sh, the
// fixtures and files_index.jsonl, which maps each path to its object. The run's key lists and
// sums stay in its staging area until the metadata is published: they are what a concurrent
// prune's garbage collection keeps alive.

// objectStoreFor is the object store location of a backup's copy tasks: the destination's root
// for a folder backup to S3, "" otherwise (a local destination keeps each backup's files in
// its folder; an archive is always whole).
func objectStoreFor(o BackupOptions) string {
	if storage.IsS3(o.BackupDir) && !o.Compress {
		return o.BackupDir
	}
	return ""
}

// planObjectStore points a new plan's copy tasks at the object store, and checks that the
// base the plan reuses from (base, "" for none) is still complete now that the key lists that
// name its objects are written.
func (r *backupRun) planObjectStore(ctx context.Context, copies []*messages.Task, base string) error {
	objects := objectStoreFor(r.o)
	if objects == "" {
		return nil
	}
	for _, t := range copies {
		if t.Copy != nil {
			t.Copy.Objects = objects
			if t.Copy.Base == "" {
				t.Copy.Base = objects
			}
		}
	}
	d, ok := r.stage.(*s3Destination)
	if !ok || base == "" {
		return nil
	}
	return CheckBaseKept(ctx, d.root, base)
}

// ErrBasePruned is returned (wrapped) by CheckBaseKept for a base backup that lost its
// metadata: a prune removed it.
var ErrBasePruned = errors.New("the base backup was pruned")

// CheckBaseKept checks, once a run's key lists are written, that its base backup (a name in
// root, the destination) still has its metadata. Prune removes a backup's metadata before
// anything else and only then sweeps the object store, keeping every object a staging area's
// key lists name: a base still complete after the key lists were written means any sweep
// that comes after its removal sees them. A base gone in between may have lost objects the
// plan reuses: the run must not go on with that plan.
func CheckBaseKept(ctx context.Context, root *storage.Bucket, base string) error {
	if base == "" {
		return nil
	}
	_, err := root.Stat(ctx, path.Join(base, layout.FileMetadata))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNotExist):
		return fmt.Errorf("base backup %s: %w while this run was planned (its %s is gone); run the backup again, or with --full", base, ErrBasePruned, layout.FileMetadata)
	}
	return fmt.Errorf("check base backup %s: %w", base, err)
}

// usesObjects reports whether the run's copy tasks store into an object store.
func (r *backupRun) usesObjects() bool {
	for _, t := range r.tasks {
		if t.Copy != nil && t.Copy.Objects != "" {
			return true
		}
	}
	return false
}
