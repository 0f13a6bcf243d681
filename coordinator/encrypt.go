package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// An encrypted folder backup. Every fixture and file is stored as NAME.age, encrypted to the
// backup's recipients; SHA256SUMS and the file index list the bytes as stored, so that the
// backup is checked, listed, copied and pruned without the key; plainsums/<run>.age, encrypted
// too, lists the plaintext sums a restore with the key checks. Models split in ranges are
// exported in chunks encrypted to the run key (only this coordinator can read them) and
// joined here into one age stream to the recipients.

// backupCrypt is how a backup is encrypted: its mode and recipients (in passphrase mode, the
// public half of the backup key sealed into encryption.KeyFile; nil for an archive sealed
// with the passphrase itself).
type backupCrypt struct {
	mode string
	rc   *encryption.Recipients
}

// encrypting tells whether the options ask for an encrypted backup.
func (o *BackupOptions) encrypting() bool { return o.Recipients != nil || o.Passphrase != "" }

// recipients are the public keys the backup's fixtures and files are encrypted to (nil: not
// encrypted).
func (r *backupRun) recipients() []string {
	if r.folderCrypt() == nil {
		return nil
	}
	return r.crypt.rc.Public()
}

// settleKeys decides what the backup is encrypted to, before anything is planned. In
// passphrase mode the key is a resumed run's own (sealed in its staging area), else its
// base's (so the base's files can be reused), else a new one; it is sealed into the staging
// area at once, so that a resume finds it.
func (r *backupRun) settleKeys(ctx context.Context) error {
	switch {
	case !r.o.encrypting():
		return nil
	case r.o.Passphrase == "":
		r.crypt = &backupCrypt{mode: encryption.ModeRecipients, rc: r.o.Recipients}
		return nil
	case r.o.Compress:
		// An archive is encrypted as a whole with the passphrase itself: no backup key.
		r.crypt = &backupCrypt{mode: encryption.ModePassphrase}
		return nil
	}
	key, sealed, err := r.stagedKey(ctx)
	if err == nil && key == nil {
		key, sealed, err = r.baseKey(ctx)
	}
	if err == nil && key == nil {
		key, err = encryption.NewBackupKey()
	}
	if err == nil && sealed == nil {
		// Sealing runs scrypt (about a second): a key taken over keeps its sealed bytes.
		sealed, err = encryption.SealKey(key, r.o.Passphrase)
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	rc, err := encryption.ParseRecipients([]string{key.Recipient().String()}, "backup key")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	r.crypt = &backupCrypt{mode: encryption.ModePassphrase, rc: rc}
	if err := writeObject(ctx, r.stage.Bucket(), encryption.KeyFile, sealed, layout.FileMode); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// stagedKey opens the backup key a resumed run's predecessor sealed into the staging area
// (nil if it had not), and its sealed bytes: the files it encrypted are the run's.
func (r *backupRun) stagedKey(ctx context.Context) (*age.X25519Identity, []byte, error) {
	if r.rec == nil {
		return nil, nil, nil
	}
	sealed, err := readSealedKey(ctx, r.stage.Bucket(), encryption.KeyFile)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("resume: %w", err)
	}
	key, err := encryption.OpenKey(sealed, r.o.Passphrase)
	if err != nil {
		return nil, nil, fmt.Errorf("resume: the run's %s: %w", encryption.KeyFile, err)
	}
	return key, sealed, nil
}

// baseKey takes over the key of the passphrase backup this one will be based on (--base, else
// the newest candidate of the same storage), so that its files are reused. A key that the
// passphrase does not open is a warning naming the base: a new key, and the files copied in
// full. nil: no such base. The key's sealed bytes come with it.
func (r *backupRun) baseKey(ctx context.Context) (*age.X25519Identity, []byte, error) {
	if r.o.Full || r.o.Compress || r.src == nil {
		return nil, nil, nil
	}
	root, err := storage.Open(ctx, r.o.BackupDir)
	if err != nil {
		return nil, nil, fmt.Errorf("open the destination %s: %w", redact.URL(r.o.BackupDir), err)
	}
	defer root.Close()
	names := []string{r.o.Base}
	if r.o.Base == "" {
		if names, err = baseCandidates(ctx, root); err != nil {
			return nil, nil, fmt.Errorf("look for a base backup: %w", err)
		}
	}
	for _, name := range names {
		meta, err := readMetadata(ctx, root, name+"/"+layout.FileMetadata)
		if err != nil || r.baseFits(meta, root) != nil {
			continue
		}
		enc := meta.Encryption
		if enc == nil || enc.Mode != encryption.ModePassphrase || enc.Key == "" {
			return nil, nil, nil
		}
		sealed, err := readSealedKey(ctx, root, name+"/"+enc.Key)
		var key *age.X25519Identity
		if err == nil {
			key, err = encryption.OpenKey(sealed, r.o.Passphrase)
		}
		if err != nil {
			r.warn(fmt.Sprintf("base backup %s: its %s does not open with this passphrase (%v): a new backup key, every file copied in full", name, enc.Key, err))
			return nil, nil, nil
		}
		return key, sealed, nil
	}
	return nil, nil, nil
}

// warn logs a warning of the run and keeps it for the report and metadata.
func (r *backupRun) warn(w string) {
	r.log.Warn(w)
	r.warnings = append(r.warnings, w)
}

// readSealedKey reads a sealed key object (encryption.KeyFile) whole.
func readSealedKey(ctx context.Context, b *storage.Bucket, key string) ([]byte, error) {
	rc, _, err := b.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := storage.ReadLimited(rc, encryption.MaxSealedKeySize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}

// exportRecipients are what an export task encrypts its model's fixture to: a folder
// backup's recipients. An encrypted archive's fixtures are encrypted to the run key: they stay
// so in the staging area until the publish decrypts them into the archive's age stream.
func (r *backupRun) exportRecipients() []string {
	switch {
	case r.crypt == nil:
		return nil
	case r.folderCrypt() != nil:
		return r.crypt.rc.Public()
	}
	return []string{r.runKey.Recipient()}
}

// encryptionFit says why a base cannot be this backup's because of how the two are encrypted
// ("" if it can): both unencrypted, or both encrypted to the same recipients.
func (r *backupRun) encryptionFit(meta *layout.Metadata) string {
	enc := meta.Encryption
	switch {
	case enc == nil && r.crypt == nil:
		return ""
	case enc == nil:
		return "it is not encrypted and this backup is: every file is copied encrypted"
	case r.crypt == nil:
		return "it is encrypted and this backup is not"
	case !r.crypt.rc.Same(enc.Recipients):
		return "it is encrypted to other recipients than this backup"
	}
	return ""
}

// errEncryptionMismatch is a base whose encryption differs from this backup's: a warning, and
// a full copy of the files.
type errEncryptionMismatch string

func (e errEncryptionMismatch) Error() string { return string(e) }

// modelSeal is how an encrypted backup's fixtures are stored: encrypted by their export
// tasks, to the recipients (NAME.age) or, staged, to the run key.
type modelSeal struct {
	// staged: an encrypted archive's fixture, kept encrypted to the run key under its plain
	// name, its plaintext's size and sum in the metadata and SHA256SUMS (the archive holds the
	// plaintext; the publish decrypts it).
	staged bool
}

// sealOfModels is the fixtures' modelSeal (nil: not encrypted).
func (r *backupRun) sealOfModels() *modelSeal {
	switch {
	case r.crypt == nil:
		return nil
	case r.folderCrypt() != nil:
		return &modelSeal{}
	}
	return &modelSeal{staged: true}
}

// writeEncryption finishes an encrypted backup's assembly: its manifest of plaintext sums,
// the base's manifests it carries (when it reused the base's copies), the sealed key listed in
// SHA256SUMS, and the metadata's encryption.
func (r *backupRun) writeEncryption(ctx context.Context, meta *layout.Metadata, sums *layout.SumsWriter, plain *layout.PlainSumsWriter) error {
	if r.folderCrypt() == nil {
		return nil
	}
	enc := &layout.Encryption{Format: encryption.Format, Mode: r.crypt.mode, Recipients: r.crypt.rc.Public()}
	carried, err := r.carryPlainSums(ctx, sums)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	own := layout.PlainSumsName(r.o.RunID)
	sum, err := putStreamed(ctx, r.stage.Bucket(), own, func(w io.Writer) error {
		_, err := plain.WriteTo(w, r.crypt.rc)
		return err
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := sums.Add(own, sum); err != nil {
		return err
	}
	enc.PlainSums = append(carried, own)
	if r.crypt.mode == encryption.ModePassphrase {
		enc.Key = encryption.KeyFile
		sum, err := hashObject(ctx, r.stage.Bucket(), encryption.KeyFile)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := sums.Add(encryption.KeyFile, sum); err != nil {
			return err
		}
	}
	meta.Encryption = enc
	return nil
}

// carryPlainSums copies the base's manifests of plaintext sums into the backup, when it reused
// the base's copies: they hold the plaintext sums of those files. They are listed in
// SHA256SUMS and returned, oldest first.
func (r *backupRun) carryPlainSums(ctx context.Context, sums *layout.SumsWriter) ([]string, error) {
	if r.rep.Reused.Files == 0 || r.files.Base == "" {
		return nil, nil
	}
	root, err := storage.Open(ctx, r.o.BackupDir)
	if err != nil {
		return nil, fmt.Errorf("open the destination %s: %w", redact.URL(r.o.BackupDir), err)
	}
	defer root.Close()
	base := r.files.Base
	meta, err := readMetadata(ctx, root, base+"/"+layout.FileMetadata)
	if err != nil {
		return nil, fmt.Errorf("base backup %s: %w", base, err)
	}
	if meta.Encryption == nil {
		return nil, fmt.Errorf("base backup %s is not encrypted, yet its files were reused", base)
	}
	var carried []string
	for _, seg := range meta.Encryption.PlainSums {
		sum, err := putStreamed(ctx, r.stage.Bucket(), seg, func(w io.Writer) error {
			rc, _, err := root.Open(ctx, base+"/"+seg)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(w, rc)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("base backup %s: carry %s: %w", base, seg, err)
		}
		if err := sums.Add(seg, sum); err != nil {
			return nil, err
		}
		carried = append(carried, seg)
	}
	return carried, nil
}

// putStreamed writes key in b from what fill writes, without holding it, and returns its
// sha256.
func putStreamed(ctx context.Context, b *storage.Bucket, key string, fill func(w io.Writer) error) (string, error) {
	h := sha256.New()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(fill(io.MultiWriter(h, pw))) }()
	_, err := b.Put(ctx, key, pr, storage.Object{Mode: layout.FileMode})
	pr.CloseWithError(errors.New("stopped")) // ends fill, if Put failed before the end
	if err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// folderCrypt is crypt for a folder backup, whose fixtures and files are encrypted one by
// one; nil for an archive (encrypted as a whole when it is published) or an unencrypted one.
func (r *backupRun) folderCrypt() *backupCrypt {
	if r.o.Compress {
		return nil
	}
	return r.crypt
}

// newPlainSumsWriter returns the writer of the run's manifest of plaintext sums, which sorts
// in runs on the local staging folder's disk, else in a temporary folder; cleanup removes
// them.
func (r *backupRun) newPlainSumsWriter() (*layout.PlainSumsWriter, func(), error) {
	dir, rmdir, err := spillDir(r.stage, "plain-runs")
	if err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	w := layout.NewPlainSumsWriter(dir, sumsBudget())
	return w, func() { w.Close(); rmdir() }, nil
}

// resumeEncryption takes a resumed run's encryption from its record: its recipients, or, in
// passphrase mode, the passphrase given again (it is never recorded).
func resumeEncryption(o *BackupOptions, r resumable) error {
	o.Recipients = nil
	if len(r.Recipients) > 0 {
		rc, err := encryption.RecipientsFromPublic(r.Recipients)
		if err != nil {
			return fmt.Errorf("recorded recipients: %w", err)
		}
		o.Recipients, o.Passphrase = rc, ""
		return nil
	}
	if !r.Passphrase {
		o.Passphrase = ""
		return nil
	}
	if o.Passphrase == "" {
		return errors.New("the run is encrypted with a passphrase, which is never recorded: give it again (--passphrase-file FILE or WNB_AGE_PASSPHRASE)")
	}
	return nil
}
