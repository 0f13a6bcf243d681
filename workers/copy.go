package workers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// maxWarnings bounds the warnings one result carries (results are small messages).
const maxWarnings = 50

// copy copies the keys a task lists from the source storage into the destination, hashing
// each file while it streams, and writes the hashes next to the outputs.
func (w *Worker) copy(ctx context.Context, t *messages.Task) (*messages.Result, error) {
	c := t.Copy
	if w.cfg.StorageURL == "" {
		return nil, Permanent(fmt.Errorf("copy %s: this worker has no storage configured (--storage / STORAGE_URL)", c.Prefix))
	}
	if !sameLocation(w.cfg.StorageURL, c.Source) {
		return nil, Permanent(fmt.Errorf("copy %s: this worker reads storage %s but the run backs up %s", c.Prefix, w.cfg.StorageURL, c.Source))
	}
	src, err := storage.Open(ctx, w.cfg.StorageURL)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: %w", c.Prefix, err))
	}
	dest, err := storage.Open(ctx, t.Dest)
	if err != nil {
		return nil, Permanent(fmt.Errorf("copy %s: %w", c.Prefix, err))
	}
	list, _, err := dest.Open(ctx, c.KeyList)
	if err != nil {
		return nil, fmt.Errorf("copy %s: read key list: %w", c.Prefix, err)
	}
	defer list.Close()

	var sums bytes.Buffer
	sw := messages.NewFileListWriter(&sums)
	res := &messages.Result{}
	buf := make([]byte, 256<<10)
	err = messages.ReadFileList(list, func(e messages.FileEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, sum, err := copyOne(ctx, src, dest, e.Key, c.DestPrefix+e.Key, buf)
		if errors.Is(err, storage.ErrNotExist) {
			// Deleted between listing and copying: the platform moved on; not a failure.
			if len(res.Warnings) < maxWarnings {
				res.Warnings = append(res.Warnings, "vanished before copy: "+e.Key)
			}
			return nil
		}
		if err != nil {
			return err
		}
		res.Files++
		res.Bytes += n
		return sw.Add(messages.FileEntry{Path: c.DestPrefix + e.Key, Size: n, SHA256: sum})
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", c.Prefix, err)
	}
	if err := sw.Flush(); err != nil {
		return nil, err
	}
	if _, err := dest.Put(ctx, c.Sums, &sums, storage.Object{Mode: 0o644}); err != nil {
		return nil, fmt.Errorf("copy %s: write sums: %w", c.Prefix, err)
	}
	return res, nil
}

// copyOne streams one file, keeping its permissions and modification time.
func copyOne(ctx context.Context, src, dest *storage.Bucket, key, destKey string, buf []byte) (int64, string, error) {
	r, obj, err := src.Open(ctx, key)
	if err != nil {
		return 0, "", err
	}
	defer r.Close()
	out, err := dest.Create(ctx, destKey, storage.Object{Mode: obj.Mode, ModTime: obj.ModTime})
	if err != nil {
		return 0, "", err
	}
	defer out.Abort()
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(out, h), r, buf)
	if err != nil {
		return n, "", fmt.Errorf("copy %s: %w", key, err)
	}
	if err := out.Commit(); err != nil {
		return n, "", err
	}
	return n, hexSum(h), nil
}

// sameLocation compares two storage locations as the user may have spelled them.
func sameLocation(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimPrefix(s, "file://")
		if !strings.Contains(s, "://") {
			if abs, err := filepath.Abs(s); err == nil {
				return abs
			}
		}
		return strings.TrimSuffix(s, "/")
	}
	return norm(a) == norm(b)
}
