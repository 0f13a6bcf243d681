package coordinator

import (
	"context"
	"fmt"
	"io"
	"path"
	"sync"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore of a plain object-store backup (a folder backup to S3: files.store "objects") into
// a local storage reads each file's object once, in its check pass, into the staging folder an
// encrypted backup's restore uses (restoreStage), checking it against its sum before anything
// changes; the workers then link each file into place from there. So a damaged or tampered
// object refuses the restore with the database untouched. Into S3, or when the storage's file
// system lacks the room for the stage, the workers read the objects and check each as they
// copy it.

// stageObjects reads the object of each file feed sends (with a stage; nothing is sent
// without one) from the object store b into the stage, as the file it restores to, with its
// permissions and time, workers at once. A file is committed there only when its object's
// content has the sum that names the object; any other is an error naming the file.
func stageObjects(ctx context.Context, b *storage.Bucket, st *restoreStage, workers int, feed func(send func(string, neededObject) error) error) error {
	if st == nil {
		return feed(func(string, neededObject) error { return nil })
	}
	var files sync.Map // each file's record, from the feed to its staging
	stage := func(ctx context.Context, k string) (string, int64, error) {
		v, _ := files.LoadAndDelete(k)
		return stageObject(ctx, b, st, v.(neededObject))
	}
	err := layout.HashEachWith(ctx, stage, workers, func(send func(string, neededObject) error) error {
		return feed(func(k string, f neededObject) error {
			files.Store(k, f)
			return send(k, f)
		})
	}, func(_ string, f neededObject, sum string, _ int64, err error) error {
		switch {
		case err != nil:
			return fmt.Errorf("check %s (object %s): %w", storage.QuoteKey(f.rel), f.obj, err)
		case sum != path.Base(f.obj):
			return fmt.Errorf("%s is corrupt: its object %s has SHA-256 %s", storage.QuoteKey(f.rel), f.obj, sum)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return st.sync(ctx)
}

// stageObject copies f's object into the stage, hashing it, and commits the copy when its sum
// is the object's name (f.plain is the file's key; see joinObjectIndex).
func stageObject(ctx context.Context, b *storage.Bucket, st *restoreStage, f neededObject) (string, int64, error) {
	r, o, err := b.Open(ctx, f.obj)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	attrs := storage.Object{Mode: o.Mode.Perm(), ModTime: o.ModTime}
	if f.mode != 0 {
		attrs.Mode = f.mode
	}
	if f.mtime != 0 {
		attrs.ModTime = time.Unix(0, f.mtime)
	}
	w, err := st.b.Create(ctx, messages.StagedName(f.plain), attrs)
	if err != nil {
		return "", 0, fmt.Errorf("stage %s: %w", storage.QuoteKey(f.plain), err)
	}
	sum, n, err := layout.HashReader(ctx, io.TeeReader(r, w))
	if err != nil || sum != path.Base(f.obj) {
		w.Abort()
		return sum, n, err
	}
	return sum, n, w.Commit()
}
