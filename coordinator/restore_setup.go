package coordinator

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// RestoreGCPercent is the collector's GOGC during a restore, unless GOGC is set.
const RestoreGCPercent = 200

// TuneRestoreGC sets the collector for a restore: a load allocates a few hundred bytes per
// value parsed and keeps ~20 MB live, and at the default GOGC of 100 the collector took a
// third of its CPU. The soft memory limit still bounds the heap (peak RSS on a 930k-row
// restore: ~70 MB with --jobs 2). An operator's GOGC wins.
func TuneRestoreGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(RestoreGCPercent)
	}
}

// BackupContents is what a local backup is known to hold, read from its metadata without
// unpacking it, so that a restore starts and checks only what it needs. Known is false when
// the metadata could not be read (an S3 backup, an archive whose metadata does not come
// first, or no backup at all): the restore itself then finds out.
type BackupContents struct {
	Known    bool
	Database bool
	Files    bool
}

// PeekBackup reads what the local backup at src (a folder, or an archive whose metadata
// comes first) holds.
func PeekBackup(ctx context.Context, src string) BackupContents {
	meta := localMetadata(ctx, src)
	if meta == nil {
		return BackupContents{}
	}
	c := BackupContents{Known: true, Database: true, Files: true}
	if meta.BackupOptions.SkipDB || (meta.FormatVersion >= 1 && len(meta.Models) == 0) {
		c.Database = false
	}
	if meta.FormatVersion >= 1 && !meta.BackupOptions.IncludeFiles {
		c.Files = false
	}
	return c
}

// RestoreNeedsQueue reports whether a restore with o copies files, and so needs the queue and
// its workers: a database-only restore loads on the coordinator and starts neither.
func RestoreNeedsQueue(ctx context.Context, o RestoreOptions) bool {
	if o.DryRun {
		return true
	}
	if o.SkipFiles {
		return false
	}
	c := PeekBackup(ctx, o.Source)
	return !c.Known || c.Files
}

// localMetadata reads a local backup's metadata without unpacking it; nil when it cannot.
func localMetadata(ctx context.Context, src string) *layout.Metadata {
	if storage.IsS3(src) {
		return nil
	}
	meta, err := layout.ReadMetadata(src)
	if err == nil {
		return meta
	}
	f, err := storage.OpenRegular(src)
	if err != nil {
		return nil
	}
	defer f.Close()
	if meta, err = archive.LeadingMetadata(ctx, f); err != nil {
		return nil
	}
	return meta
}
