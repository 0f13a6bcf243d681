package coordinator

import "context"

// LocalBackup is a backup brought into a local folder: as it is for a folder, unpacked or
// downloaded into a private temporary folder for an archive or an s3:// location.
type LocalBackup struct {
	// Dir is the backup's folder.
	Dir string
	// Root is the location of the destination holding the backup (its parent; empty for an
	// archive): an object-store backup's files are in its objects/.
	Root string
	src  *restoreSource
}

// OpenBackup makes the backup at src (a folder, a .tar.gz, or an s3:// folder prefix or
// archive) readable as a local folder, the way a restore does before its checks; tempDir is
// where it is unpacked or downloaded (default: the system's temporary folder). Close removes
// what was brought in.
func OpenBackup(ctx context.Context, src, tempDir string) (*LocalBackup, error) {
	s, err := openRestoreSource(ctx, src, tempDir, archiveKeys{})
	if err != nil {
		return nil, err
	}
	return &LocalBackup{Dir: s.dir, Root: s.root, src: s}, nil
}

// Close removes the temporary copy, if there is one.
func (b *LocalBackup) Close() { b.src.cleanup() }
