package roundtrip

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// backupKeys are the keys that open the round trip's backup: the identities, and a
// passphrase backup's key opened with the passphrase.
func backupKeys(ctx context.Context, o Options, backup string) (*encryption.Identities, error) {
	if o.Passphrase == "" {
		return o.Identities, nil
	}
	key, err := coordinator.OpenBackupKey(ctx, backup, o.Passphrase)
	if err != nil {
		return nil, err
	}
	return encryption.JoinIdentities(o.Identities, key), nil
}

// plainBackup is the backup folder to compare with: dir itself, or, for an encrypted backup,
// a decrypted copy of it in out (fixtures and files without .age, the metadata naming them
// so, each file with the permissions the metadata records).
func plainBackup(ctx context.Context, o Options, dir, out string, rep *Report) (string, error) {
	meta, err := layout.ReadMetadata(dir)
	if err != nil || meta.Encryption == nil {
		return dir, err
	}
	rep.Encrypted = true
	ids, err := backupKeys(ctx, o, dir)
	if err != nil {
		return "", err
	}
	for i, m := range meta.Models {
		if err := decryptTo(ctx, filepath.Join(dir, m.File), filepath.Join(out, strings.TrimSuffix(m.File, encryption.Ext)), ids, 0o600); err != nil {
			return "", err
		}
		meta.Models[i].File = strings.TrimSuffix(m.File, encryption.Ext)
	}
	meta.Files = *meta.Files.PlainNames()
	modeOf := meta.Files.RecordedModes()
	files := filepath.Join(dir, layout.FilesDir)
	err = filepath.WalkDir(files, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = strings.TrimSuffix(filepath.ToSlash(rel), encryption.Ext)
		mode, ok := modeOf(rel)
		if !ok {
			mode = 0o600
		}
		return decryptTo(ctx, p, filepath.Join(out, filepath.FromSlash(rel)), ids, mode)
	})
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("decrypt the backup's files: %w", err)
	}
	meta.Encryption = nil
	if err := os.MkdirAll(out, 0o700); err != nil {
		return "", err
	}
	return out, layout.WriteMetadata(out, meta)
}

// decryptTo decrypts the age file src into dst, created with mode.
func decryptTo(ctx context.Context, src, dst string, ids *encryption.Identities, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	in, err := storage.OpenRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer f.Close()
	s, err := layout.HashAge(ctx, in, ids, f)
	if err == nil {
		err = s.Decrypt
	}
	if err != nil {
		return fmt.Errorf("decrypt %s: %w", src, err)
	}
	return f.Close()
}
