package workers

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// reuser puts a backup's unchanged files in place as hard links to an earlier backup's copies
// (FileEntry.Reuse, relative to CopyTask.Base) on a local destination, so that every backup
// folder stays complete on its own while an unchanged file is neither read nor stored again.
type reuser struct {
	base     *storage.Bucket
	checksum bool
	// sealed: the copies are encrypted (NAME.age), so an earlier copy is larger than the
	// plaintext size its index records.
	sealed bool
	// timed: the copies are a self-indexed base's, which the coordinator did not stat
	// (CopyTask.SelfIndexedBase): a copy is the file's only with its size and time.
	timed bool
	// sameTime: the plan found the content unchanged but not the time (--checksum, a copy's
	// sums), so a link, which shares its copy's time, is used only when that time is the
	// file's recorded one. (An incremental backup's plan compared the times already: on a
	// filesystem that keeps coarser times than the source's, its copies' would never match.)
	sameTime bool
	log      *slog.Logger
}

// openReuser returns the task's reuser, or nil when the task reuses nothing this way: a
// restore, a task without a base, or a destination that is not a local folder (an object
// store reuses by content instead).
func openReuser(ctx context.Context, c *messages.CopyTask, dst *storage.Bucket, restore bool, log *slog.Logger) (*reuser, error) {
	if restore || c.Base == "" || c.Objects != "" || !dst.IsLocal() {
		return nil, nil
	}
	base, err := storage.Open(ctx, c.Base)
	if err != nil {
		return nil, fmt.Errorf("open the earlier backups in %s: %w", c.Base, err)
	}
	return &reuser{base: base, checksum: c.Checksum, sealed: len(c.Recipients) > 0, timed: c.SelfIndexedBase && !c.Checksum, sameTime: c.Checksum, log: log}, nil
}

// close releases the base.
func (r *reuser) close() {
	if r != nil {
		r.base.Close()
	}
}

// linkInline links e's earlier copy in place when that needs no reading of the source (no
// --checksum), and returns its outcome; nil means the file goes the way of a copy (not
// reused, or the link failed), where a failed link is copied. An unchanged file is one
// link: it takes no transfer slot, buffer or goroutine, which cost more than the link.
func (r *reuser) linkInline(ctx context.Context, dst *storage.Bucket, c *messages.CopyTask, restore bool, e messages.FileEntry) *copiedFile {
	if r == nil || r.checksum || e.Reuse == "" || e.SHA256 == "" {
		return nil
	}
	srcKey, dstKey := copyKeys(c, restore, e)
	out, ok := r.reuse(ctx, nil, dst, e, srcKey, dstKey, nil)
	if !ok {
		return nil
	}
	return &copiedFile{key: e.Key, dest: dstKey, entry: e, reused: true, n: out.n, sum: out.sum, mode: out.mode}
}

// reuse links e's earlier copy to dstKey and returns it as copied, with the earlier backup's
// sum. With checksum the source is hashed first, and a file whose content differs is not
// reused. ok is false when the file must be copied instead: a link that fails (the earlier
// backup pruned meanwhile, another filesystem, too many links) is not an error, the copy
// stands in for it.
func (r *reuser) reuse(ctx context.Context, src, dst *storage.Bucket, e messages.FileEntry, srcKey, dstKey string, buf []byte) (out copied, ok bool) {
	if r == nil || e.Reuse == "" || e.SHA256 == "" {
		return copied{}, false
	}
	if r.checksum {
		h, err := hashSource(ctx, src, srcKey, buf)
		if err != nil || h.changed || h.sum != e.SHA256 {
			return copied{}, false // the copy meets (and reports) the same error, or stores the new content
		}
		// The earlier copy is read too, as rsync -c reads its --link-dest copy: one damaged
		// since it was written (bit rot, an edit that kept its size and time) is not linked
		// into another backup, where it would be damaged as well.
		if b, err := hashSource(ctx, r.base, e.Reuse, buf); err != nil || b.sum != e.SHA256 {
			note := fmt.Sprintf("earlier copy %s is not what its backup's sums say (damaged since it was written?): copied %s afresh; verify that backup", e.Reuse, storage.QuoteKey(e.Key))
			r.log.Warn(note)
			return copied{note: note}, false
		}
	}
	obj, err := dst.LinkFrom(ctx, r.base, e.Reuse, dstKey)
	if err != nil {
		r.log.Debug("earlier copy not linked; copying the file", "key", e.Key, "err", err)
		return copied{}, false
	}
	if r.timed {
		if obj.Size != e.Size || obj.ModTime.UnixNano() != e.ModTime {
			// A self-indexed base's copy is its own index entry: the file changed since.
			r.log.Debug("file changed since the earlier backup; copying it over the link", "key", e.Key, "reuse", e.Reuse)
			return copied{}, false
		}
	} else if !r.sizeFits(obj.Size, e.Size) {
		// The earlier copy is not what its index says: copy over the link.
		r.log.Warn("earlier copy differs in size from its index; copying the file", "key", e.Key, "reuse", e.Reuse, "size", obj.Size, "index_size", e.Size)
		return copied{}, false
	} else if (r.sameTime || r.sealed) && e.ModTime != 0 && obj.ModTime.UnixNano() != e.ModTime {
		// A link shares its copy's modification time, which is not the file's (its content
		// is the same, as --checksum or a copy's sums found): a copy of its own gets the
		// file's time. An encrypted copy carries its file's time, and its size cannot tell
		// an edit in place: another time is a copy changed since, not linked again.
		r.log.Debug("earlier copy has another modification time; copying the file", "key", e.Key, "reuse", e.Reuse)
		return copied{}, false
	}
	return copied{n: e.Size, sum: e.SHA256, mode: fs.FileMode(e.Mode).Perm()}, true
}

// ageOverhead is the least an age file adds to its plaintext: its payload's nonce and one
// chunk's authentication tag (the header adds more).
const ageOverhead = 16 + 16

// sizeFits tells whether an earlier copy of stored bytes can be the copy of a file of size
// bytes: the same size, or for an encrypted copy at least the plaintext and age's overhead.
func (r *reuser) sizeFits(stored, size int64) bool {
	if r.sealed {
		return stored >= size+ageOverhead
	}
	return stored == size
}
