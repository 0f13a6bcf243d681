package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
)

// indexForObjects gives a self-indexed backup copied into an object store the file index
// that store's readers (restore, verify, prune, restore.sh) find each file by: there no copy
// stands for it. It is built from the source's SHA256SUMS and its copies' sizes and times,
// written beside the copied files and listed in a new SHA256SUMS, whose sum goes into meta.
// Any other backup is left as it is.
func (r *copyRun) indexForObjects(ctx context.Context, meta *layout.Metadata) error {
	if r.destLocal || !meta.BackupOptions.IncludeFiles || meta.Files.Index != "" || !meta.Files.SelfIndexed {
		return nil
	}
	if meta.Files.NameEncoding != "" {
		return fmt.Errorf("copy: %s says the backup is self-indexed with name encoding %q: only a local folder is, whose names are not encoded", layout.FileMetadata, meta.Files.NameEncoding)
	}
	dir, rmdir, err := spillDir(r.stage, "copy-index")
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer rmdir()
	sums := layout.NewSpillingSumsWriter(dir, sumsBudget())
	defer sums.Close()
	index := layout.NewFileIndexWriter(dir, sumsBudget())
	defer index.Close()
	if err := r.gatherIndex(ctx, meta, sums, index); err != nil {
		return fmt.Errorf("copy: build the file index of a self-indexed backup: %w", err)
	}
	var gz bytes.Buffer
	h := sha256.New()
	if _, err := index.WriteGzipTo(io.MultiWriter(h, &gz)); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := writeObject(ctx, r.stage.Bucket(), layout.FileIndexGz, gz.Bytes(), layout.FileMode); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := sums.Add(layout.FileIndexGz, hex.EncodeToString(h.Sum(nil))); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if meta.ManifestSHA256, err = writeSums(ctx, r.stage.Bucket(), sums); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	meta.Files.Index, meta.Files.SelfIndexed = layout.FileIndexGz, false
	return nil
}

// gatherIndex reads the source's SHA256SUMS into sums, and an index entry for each of its
// storage files (with its sum: an object store's readers need it there) into index.
func (r *copyRun) gatherIndex(ctx context.Context, meta *layout.Metadata, sums *layout.SumsWriter, index *layout.FileIndexWriter) error {
	rc, _, err := r.src.bucket.Open(ctx, layout.FileSums)
	if err != nil {
		return err
	}
	defer rc.Close()
	modeOf := meta.Files.RecordedModes()
	return layout.EachSum(rc, func(rel, sum string) error {
		if err := sums.Add(rel, sum); err != nil {
			return err
		}
		if !strings.HasPrefix(rel, layout.FilesDir+"/") {
			return nil
		}
		obj, err := r.src.bucket.Stat(ctx, rel)
		if err != nil {
			return err
		}
		mode, _ := modeOf(rel)
		return index.Add(messages.FileEntry{Path: rel, Key: strings.TrimPrefix(rel, layout.FilesDir+"/"),
			Size: obj.Size, ModTime: obj.ModTime.UnixNano(), SHA256: sum, Mode: uint32(mode)})
	})
}
