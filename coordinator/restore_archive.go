package coordinator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// archiveKeys are what may open an encrypted archive: the operator's age identities
// (--identity) and a passphrase (an archive encrypted with one). Neither leaves the process.
type archiveKeys struct {
	ids        *encryption.Identities
	passphrase string
}

// candidates are the keys to try, in order: the identities, then the passphrase.
func (k archiveKeys) candidates() ([]*encryption.Identities, error) {
	var out []*encryption.Identities
	if k.ids != nil {
		out = append(out, k.ids)
	}
	if k.passphrase != "" {
		ids, err := encryption.PassphraseIdentities(k.passphrase)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		out = append(out, ids)
	}
	return out, nil
}

// OpenBackupDecrypting is OpenBackup for a backup that may be an encrypted archive
// (backup_….tar.gz.age): ids or passphrase decrypt it as it is unpacked.
func OpenBackupDecrypting(ctx context.Context, src, tempDir string, ids *encryption.Identities, passphrase string) (*LocalBackup, error) {
	s, err := openRestoreSource(ctx, src, tempDir, archiveKeys{ids: ids, passphrase: passphrase})
	if err != nil {
		return nil, err
	}
	return &LocalBackup{Dir: s.dir, Root: s.root, src: s}, nil
}

// openSealedLocal unpacks a local encrypted archive into a private temporary folder.
func openSealedLocal(ctx context.Context, src, tempDir string, keys archiveKeys) (*restoreSource, error) {
	tmp, err := os.MkdirTemp(tempDir, "wnb-restore-")
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", src, err)
	}
	open := func() (io.ReadCloser, error) { return storage.OpenRegular(src) }
	top, err := unpackSealed(ctx, src, open, tmp, keys)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &restoreSource{dir: filepath.Join(tmp, top), private: true, cleanup: func() { os.RemoveAll(tmp) }}, nil
}

// fetchSealedS3 unpacks an encrypted archive object into tmp as it streams.
func fetchSealedS3(ctx context.Context, b *storage.Bucket, src, name, tmp string, keys archiveKeys) (*restoreSource, error) {
	open := func() (io.ReadCloser, error) {
		r, _, err := b.Open(ctx, name)
		return r, err
	}
	top, err := unpackSealed(ctx, src, open, tmp, keys)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &restoreSource{dir: filepath.Join(tmp, top), private: true, cleanup: func() { os.RemoveAll(tmp) }}, nil
}

// unpackSealed decrypts the archive src (open reads it from its start) and unpacks it into
// tmp. No key, or none that opens it, is a refusal; a tampered or truncated archive fails
// the unpacking (age authenticates every chunk, and the end of the stream is read too, so a
// cut after the archive's last entry is caught). Nothing outside tmp is touched.
func unpackSealed(ctx context.Context, src string, open func() (io.ReadCloser, error), tmp string, keys archiveKeys) (string, error) {
	plain, closer, err := decryptArchive(src, open, keys)
	if err != nil {
		return "", err
	}
	defer closer.Close()
	// Decrypted on a goroutine of its own, a few buffers ahead: age's work overlaps the
	// unpacking's (decompression, files written) instead of taking turns with it.
	ahead := newReadAhead(plain)
	defer ahead.Close()
	top, err := archive.Extract(ctx, ahead, tmp)
	if err == nil {
		_, err = io.Copy(io.Discard, ahead)
	}
	if errors.Is(err, archive.ErrNotArchive) {
		return "", outcome.Usagef("%s decrypts to something that is not a backup archive: %w", redact.URL(src), err)
	}
	if err != nil {
		return "", fmt.Errorf("decrypt and unpack %s: %w", redact.URL(src), err)
	}
	return top, nil
}

// decryptArchive opens src with the first key that can, returning the plaintext and what to
// close after it.
func decryptArchive(src string, open func() (io.ReadCloser, error), keys archiveKeys) (io.Reader, io.Closer, error) {
	cands, err := keys.candidates()
	if err != nil {
		return nil, nil, outcome.Usagef("%s: %w", redact.URL(src), err)
	}
	if len(cands) == 0 {
		return nil, nil, outcome.Usagef("%s: %w", redact.URL(src), encryption.ErrNoIdentity)
	}
	for _, ids := range cands {
		rc, err := open()
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", redact.URL(src), err)
		}
		plain, err := ids.Decrypt(bufio.NewReaderSize(rc, 1<<20))
		if err == nil {
			return plain, rc, nil
		}
		rc.Close()
		if !errors.Is(err, encryption.ErrWrongKey) {
			return nil, nil, fmt.Errorf("decrypt %s: %w", redact.URL(src), err)
		}
	}
	return nil, nil, outcome.Errorf(outcome.Refused, "restore refused: %s: %w; nothing was changed", redact.URL(src), encryption.ErrWrongKey)
}
