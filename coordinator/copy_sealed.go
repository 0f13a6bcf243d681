package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// An encrypted archive is copied without its key: the .age file as it is (checked on arrival
// against the SHA-256 its sidecar records), then its sidecar, last, which makes the copy
// complete.

// verifySealedSource reads an encrypted archive's sidecar and checks the archive's bytes
// against it: a missing sidecar (an incomplete archive) or bytes that differ are refused.
func verifySealedSource(ctx context.Context, root *storage.Bucket, name string) (*layout.Metadata, string, error) {
	meta, err := readMetadata(ctx, root, layout.SidecarName(name))
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: an incomplete encrypted archive (no sidecar %s)", layout.SidecarName(name))
	}
	if err != nil {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: sidecar %s: %w", layout.SidecarName(name), err)
	}
	if meta.Archive == nil || meta.Status != layout.StatusComplete {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: sidecar %s records no archive sum or status %q", layout.SidecarName(name), meta.Status)
	}
	rc, _, err := root.Open(ctx, name)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: no archive %s", name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != meta.Archive.SHA256 || n != meta.Archive.Bytes {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: %s has %d bytes, sha256 %s, but its sidecar records %d bytes, sha256 %s (damaged or tampered)",
			name, n, sum, meta.Archive.Bytes, meta.Archive.SHA256)
	}
	return meta, sum, nil
}

// copySidecar is the sidecar the copy of an encrypted archive gets: the source's, saying
// where it was copied from.
func (r *copyRun) copySidecar() ([]byte, error) {
	meta := *r.src.meta
	meta.CopiedFrom = &layout.CopiedFrom{Source: redact.URL(r.o.Backup), Time: time.Now().UTC(), Run: r.o.RunID}
	data, err := meta.Marshal()
	if err != nil {
		return nil, fmt.Errorf("copy: sidecar: %w", err)
	}
	return data, nil
}

// publishSidecar writes the copied encrypted archive's sidecar beside it, last (locally
// under a temporary name, then linked). An archive already there (a copy that stopped before
// its sidecar, or finished) gets one when it has none.
func (r *copyRun) publishSidecar(ctx context.Context) error {
	if !r.src.sealed {
		return nil
	}
	side := layout.SidecarName(r.src.name)
	if _, err := r.destRoot.Stat(ctx, side); err == nil {
		return nil
	}
	data, err := r.copySidecar()
	if err != nil {
		return err
	}
	if !r.destLocal {
		if _, err := r.destRoot.Put(ctx, side, bytes.NewReader(data), storage.Object{Mode: layout.FileMode}); err != nil {
			return fmt.Errorf("copy: sidecar %s: %w", side, err)
		}
		return nil
	}
	tmp := filepath.Join(r.o.Dest, ".wnb-sidecar-"+r.o.RunID+"-"+side+".tmp")
	defer os.Remove(tmp)
	if err := os.WriteFile(tmp, data, layout.FileMode); err != nil {
		return fmt.Errorf("copy: sidecar %s: %w", side, err)
	}
	if err := syncPath(tmp); err != nil {
		return fmt.Errorf("copy: sidecar %s: %w", side, err)
	}
	if err := os.Link(tmp, filepath.Join(r.o.Dest, side)); err != nil {
		return fmt.Errorf("copy: sidecar %s: %w", side, err)
	}
	return syncPath(r.o.Dest)
}
