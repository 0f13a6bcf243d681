package verify

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// At verifies the backup at loc: a local folder or archive (Verify), or a location on S3. There
// an encrypted archive is streamed, never downloaded whole; any other backup is brought into a
// private temporary folder first, as a restore does, and its object store is the S3
// destination's. The report names loc.
func At(ctx context.Context, loc string, o Options) (*Report, error) {
	if !storage.IsS3(loc) {
		return Verify(ctx, loc, o)
	}
	if u, err := url.Parse(loc); err == nil && strings.HasSuffix(u.Path, layout.EncryptedExt) {
		ids, err := archiveIdentities(o)
		if err != nil {
			return nil, err
		}
		return VerifyEncryptedArchive(ctx, loc, ids, o)
	}
	b, err := coordinator.OpenBackup(ctx, loc, o.TempDir)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", redact.URL(loc), err)
	}
	defer b.Close()
	o.Objects = b.Root
	rep, err := VerifyDir(ctx, b.Dir, o)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", redact.URL(loc), err)
	}
	rep.Path = redact.URL(loc)
	return rep, nil
}
