package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	pathpkg "path"
	"path/filepath"
	"time"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// CheckSidecar is the check of an encrypted archive's stored bytes against its sidecar.
const CheckSidecar = "sidecar"

// WarnNotDecrypted is the warning for an encrypted archive verified without a key.
const WarnNotDecrypted = "encrypted archive: only its bytes were checked against the sidecar; give --identity to decrypt it and check its content"

// IsEncryptedArchive reports whether the file is an age-encrypted archive: by its name
// (backup_….tar.gz.age) or its first bytes.
func IsEncryptedArchive(file string) bool { return encryption.IsEncryptedFile(file) }

// archiveIdentities are the keys a verify of an encrypted archive decrypts with: none without
// --decrypt; the identities, or the passphrase (the archive of a passphrase backup is
// encrypted to it directly), with it. --decrypt without either is a usage error.
func archiveIdentities(o Options) (*encryption.Identities, error) {
	switch {
	case !o.Decrypt:
		return nil, nil
	case o.Identities != nil:
		return o.Identities, nil
	case o.Passphrase != "":
		return encryption.PassphraseIdentities(o.Passphrase)
	}
	return nil, outcome.Usagef("verify --decrypt: %w", encryption.ErrNoIdentity)
}

// VerifyEncryptedArchive verifies an age-encrypted archive. Its bytes' SHA-256 and size must
// be those its sidecar (FILE.json, the metadata in the clear, written last) records; without
// a sidecar the archive is incomplete. Without ids that is all that can be checked (and a
// warning says so); with them the archive is decrypted as it is read and verified as a plain
// one. Identities that cannot open it are an error: nothing could be checked.
//
// path is a local file or an s3:// location.
func VerifyEncryptedArchive(ctx context.Context, path string, ids *encryption.Identities, o Options) (*Report, error) {
	start := time.Now()
	f, sidecar, err := openSealed(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", redact.URL(path), err)
	}
	defer f.Close()
	stored := &hashCounter{h: sha256.New()}
	in := io.TeeReader(f, stored)
	var rep *Report
	if ids == nil {
		if _, err := io.Copy(io.Discard, in); err != nil {
			return nil, fmt.Errorf("verify %s: %w", path, err)
		}
		rep = &Report{Path: path, Format: -1, Warnings: []string{WarnNotDecrypted}}
	} else if rep, err = verifyDecrypted(ctx, path, in, ids, o, start); err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, in); err != nil { // what age did not need, for the sum
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	checkSidecar(rep, path, stored, sidecar)
	rep.OK = len(rep.Problems) == 0
	for _, c := range rep.Checks {
		rep.OK = rep.OK && c.OK
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// verifyDecrypted decrypts the archive as in streams and verifies it as a plain one; the
// rest of the age stream is read too, so a cut after the archive's last entry is found.
func verifyDecrypted(ctx context.Context, path string, in io.Reader, ids *encryption.Identities, o Options, start time.Time) (*Report, error) {
	plain, err := ids.Decrypt(in)
	if errors.Is(err, encryption.ErrWrongKey) || errors.Is(err, encryption.ErrNoIdentity) {
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	if err != nil {
		rep := &Report{Path: path, Format: -1, Checks: []Check{{Name: CheckArchive, Detail: "cannot decrypt"}}}
		rep.Problems = []string{fmt.Sprintf("%s: %v", filepath.Base(path), err)}
		return rep, nil
	}
	rep, err := verifyArchiveFrom(ctx, path, plain, o, start)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, plain); err != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", filepath.Base(path), err))
	}
	return rep, nil
}

// checkSidecar compares the stored bytes with what the sidecar records, and takes the run id
// and status from it when the content was not read.
func checkSidecar(rep *Report, path string, stored *hashCounter, sidecar func() ([]byte, error)) {
	side := layout.SidecarName(path)
	c := Check{Name: CheckSidecar}
	data, err := sidecar()
	var meta *layout.Metadata
	if err == nil {
		meta, err = layout.ParseMetadata(data)
	}
	sum := hex.EncodeToString(stored.h.Sum(nil))
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, storage.ErrNotExist):
		c.Detail = "no sidecar"
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: no sidecar %s: the encrypted archive is incomplete", filepath.Base(path), filepath.Base(side)))
	case err != nil:
		c.Detail = "unreadable sidecar"
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", filepath.Base(side), err))
	case meta.Archive == nil:
		c.Detail = "sidecar records no archive sum"
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: no archive sha256", filepath.Base(side)))
	case meta.Archive.SHA256 != sum || meta.Archive.Bytes != stored.n:
		c.Detail = "sha256 differs"
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d bytes, sha256 %s; its sidecar records %d bytes, sha256 %s (damaged or tampered)",
			filepath.Base(path), stored.n, sum, meta.Archive.Bytes, meta.Archive.SHA256))
	default:
		c.OK, c.Detail = true, "sha256 of the stored bytes matches the sidecar"
	}
	rep.Checks = append([]Check{c}, rep.Checks...)
	if meta != nil && rep.RunID == "" {
		rep.Format, rep.RunID, rep.Status = meta.FormatVersion, meta.RunID, meta.Status
	}
}

// openSealed opens an encrypted archive, a local file or an S3 object, and says how to read
// its sidecar.
func openSealed(ctx context.Context, path string) (io.ReadCloser, func() ([]byte, error), error) {
	if !storage.IsS3(path) {
		f, err := storage.OpenRegular(path)
		if err != nil {
			return nil, nil, err
		}
		return f, func() ([]byte, error) { return storage.ReadRegular(layout.SidecarName(path), layout.MaxMetadataSize) }, nil
	}
	u, err := url.Parse(path)
	if err != nil {
		return nil, nil, err
	}
	name := pathpkg.Base(u.Path)
	u.Path = pathpkg.Dir(u.Path)
	b, err := storage.Open(ctx, u.String())
	if err != nil {
		return nil, nil, err
	}
	r, _, err := b.Open(ctx, name)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	sidecar := func() ([]byte, error) {
		rc, _, err := b.Open(ctx, layout.SidecarName(name))
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return storage.ReadLimited(rc, layout.MaxMetadataSize)
	}
	return bucketReader{r, b}, sidecar, nil
}

// bucketReader is an object's reader that closes its bucket too.
type bucketReader struct {
	io.ReadCloser
	b *storage.Bucket
}

func (r bucketReader) Close() error {
	err := r.ReadCloser.Close()
	r.b.Close()
	return err
}

// hashCounter hashes and counts what is written to it.
type hashCounter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
