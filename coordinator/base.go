package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// baseBackup is the earlier backup whose unchanged files a new backup reuses: its name in the
// destination, its metadata, and the destination root it is read through.
type baseBackup struct {
	name string
	meta *layout.Metadata
	root *storage.Bucket
}

// findBase picks the base of an incremental backup: --base NAME, else the newest complete
// backup folder of the destination that holds the same storage's files and a file index (or
// is self-indexed). Each
// candidate's manifest is verified first; one that fails is named in a warning and the next
// older one is tried. nil (no error) means a full backup. A --base that cannot be used is an
// error: the user asked for that one.
func (r *backupRun) findBase(ctx context.Context, root *storage.Bucket) (*baseBackup, error) {
	if r.o.Full || r.o.Compress || r.src == nil {
		return nil, nil
	}
	if r.o.Base != "" {
		b, err := r.usableBase(ctx, root, r.o.Base)
		var enc errEncryptionMismatch
		if errors.As(err, &enc) {
			r.warn(fmt.Sprintf("base backup %s not used: %v", r.o.Base, err))
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("backup --base %s: %w", r.o.Base, err)
		}
		return b, nil
	}
	names, err := baseCandidates(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("backup: look for a base backup: %w", err)
	}
	for _, name := range names {
		if slices.Contains(r.damagedBases, name) {
			continue
		}
		b, err := r.usableBase(ctx, root, name)
		var skip errNotBase
		switch {
		case err == nil:
			r.log.Info("incremental backup", "base", name)
			return b, nil
		case errors.As(err, &skip):
			r.log.Debug("not a base", "backup", name, "why", err)
		default:
			w := fmt.Sprintf("base backup %s not used: %v", name, err)
			r.log.Warn(w)
			r.warnings = append(r.warnings, w)
		}
	}
	return nil, nil
}

// errNotBase is a backup that is not meant as a base (another storage, an older format, no
// files): passed over without a warning, unlike one that should be and fails its checks.
type errNotBase string

func (e errNotBase) Error() string { return string(e) }

// baseCandidates lists the destination's backup folders, newest first (by name: the time it
// was taken, then its collision suffix).
func baseCandidates(ctx context.Context, root *storage.Bucket) ([]string, error) {
	folders, err := root.Folders(ctx)
	if err != nil {
		return nil, err
	}
	type cand struct {
		name   string
		parsed layout.ParsedName
	}
	var cs []cand
	for _, f := range folders {
		if p, ok := layout.ParseName(f, nil); ok && !p.Compressed {
			cs = append(cs, cand{f, p})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := b.parsed.Time.Compare(a.parsed.Time); c != 0 {
			return c
		}
		return b.parsed.Seq - a.parsed.Seq
	})
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.name
	}
	return names, nil
}

// usableBase reads name's metadata, checks that it can be this backup's base, and verifies
// its manifest and file index.
func (r *backupRun) usableBase(ctx context.Context, root *storage.Bucket, name string) (*baseBackup, error) {
	if p, ok := layout.ParseName(name, nil); !ok || p.Compressed {
		return nil, fmt.Errorf("%q is not a backup folder name (backup_YYYYMMDD_HHMMSS; an archive is never a base)", name)
	}
	meta, err := readMetadata(ctx, root, name+"/"+layout.FileMetadata)
	if err != nil {
		return nil, err
	}
	if err := r.baseFits(meta, root); err != nil {
		return nil, err
	}
	if why := r.encryptionFit(meta); why != "" {
		return nil, errEncryptionMismatch(why)
	}
	if err := r.holdBase(name); err != nil {
		return nil, err
	}
	if err := verifyBase(ctx, root, name, meta); err != nil {
		return nil, err
	}
	return &baseBackup{name: name, meta: meta, root: root}, nil
}

// holdBase keeps a local base from being pruned until the run ends (its copies are linked
// into the new backup as the tasks run); a base a prune is deleting is no base.
func (r *backupRun) holdBase(name string) error {
	if storage.IsS3(r.o.BackupDir) {
		return nil // an S3 destination's prune spares what a run in progress needs
	}
	release, err := layout.Hold(filepath.Join(storage.LocalPath(r.o.BackupDir), name))
	if err != nil {
		return err // being pruned: the next one is tried, with a warning
	}
	r.holds = append(r.holds, release)
	return nil
}

// baseFits says why a backup cannot be this one's base, if it cannot.
func (r *backupRun) baseFits(meta *layout.Metadata, root *storage.Bucket) error {
	wantStore := ""
	if !root.IsLocal() {
		wantStore = layout.StoreObjects
	}
	switch {
	case meta.Status != layout.StatusComplete:
		return fmt.Errorf("its metadata status is %q, not complete", meta.Status)
	case !meta.BackupOptions.IncludeFiles:
		return errNotBase("it holds no storage files")
	case meta.BackupOptions.Compress:
		return errNotBase("it is an archive")
	case meta.Storage != r.src.String():
		return errNotBase(fmt.Sprintf("it backs up storage %s, not %s", meta.Storage, r.src.String()))
	case meta.Files.Index == "" && meta.Files.SelfIndexed:
		if !root.IsLocal() || !r.src.IsLocal() {
			return fmt.Errorf("its metadata says it is self-indexed, which only a local folder backed up from a local folder can be")
		}
	case meta.Files.Index == "":
		return errNotBase("it has no " + layout.FileIndex + " (written by an older version)")
	case !layout.IsFileIndexName(meta.Files.Index):
		return fmt.Errorf("its metadata names file index %q, not %s or %s", meta.Files.Index, layout.FileIndexGz, layout.FileIndex)
	case meta.Files.Store != wantStore:
		return errNotBase(fmt.Sprintf("its files are stored %q, not %q as this destination's", meta.Files.Store, wantStore))
	}
	return nil
}

// verifyBase checks that name's SHA256SUMS is the one its metadata vouches for and that its
// file index (a self-indexed base has none) is the one SHA256SUMS lists, streaming both: a
// tampered or damaged base is never trusted.
func verifyBase(ctx context.Context, root *storage.Bucket, name string, meta *layout.Metadata) error {
	if meta.ManifestSHA256 == "" {
		return fmt.Errorf("its metadata has no manifest_sha256")
	}
	manifest, listed, err := hashSums(ctx, root, name+"/"+layout.FileSums, meta.Files.Index)
	if err != nil {
		return err
	}
	if manifest != meta.ManifestSHA256 {
		return fmt.Errorf("%s has sha256 %s but its metadata says %s (damaged or tampered)", layout.FileSums, manifest, meta.ManifestSHA256)
	}
	if meta.Files.Index == "" && meta.Files.SelfIndexed {
		return nil
	}
	if listed == "" {
		return fmt.Errorf("%s does not list %s", layout.FileSums, meta.Files.Index)
	}
	got, err := hashObject(ctx, root, name+"/"+meta.Files.Index)
	if err != nil {
		return err
	}
	if got != listed {
		return fmt.Errorf("%s has sha256 %s but %s says %s (damaged or tampered)", meta.Files.Index, got, layout.FileSums, listed)
	}
	return nil
}

// hashSums hashes a SHA256SUMS as it streams and returns, besides, the sum it lists for
// file ("" if none).
func hashSums(ctx context.Context, root *storage.Bucket, key, file string) (sum, listed string, err error) {
	rc, _, err := root.Open(ctx, key)
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", layout.FileSums, err)
	}
	defer rc.Close()
	sum, err = layout.HashSums(rc, func(p, s string) error {
		if p == file && listed == "" {
			listed = s
		}
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", layout.FileSums, err)
	}
	return sum, listed, nil
}

// hashObject returns the hex SHA-256 of an object, streaming it.
func hashObject(ctx context.Context, root *storage.Bucket, key string) (string, error) {
	rc, _, err := root.Open(ctx, key)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
