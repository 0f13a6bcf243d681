package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore of an encrypted backup (metadata.encryption) decrypts everything in its check
// pass, before anything changes: each fixture into the restore's private work folder, from
// which it is then loaded, and each file into nothing but its hash. Every one is checked by
// its plaintext, against the backup's encrypted manifest of plaintext sums (itself checked
// against SHA256SUMS): age authenticates every stored byte as it decrypts, so a file changed,
// cut or extended fails to decrypt and another file's ciphertext has another plaintext, and
// the stored bytes are hashed again only to name the cause of a failure. Into a local storage
// the check pass also writes each file's plaintext where the workers link it from
// (restore_decrypt_stage.go); otherwise the workers decrypt the files again as they restore
// them, checking the plaintext sum once more.

// restoreDecrypt is an encrypted backup's keys and plaintext manifest, open for a restore.
type restoreDecrypt struct {
	ids   *encryption.Identities
	plain *layout.PlainSums
	// fixtures is the folder of the decrypted fixtures, inside the restore's work folder.
	fixtures string
	// stage, if set, holds the files decrypted by the check pass for the workers to link.
	stage *restoreStage
}

func (d *restoreDecrypt) close() {
	if d != nil {
		d.plain.Close()
		d.stage.close()
	}
}

// restoring says the files are being restored now: the storage root the stage made stays.
func (d *restoreDecrypt) restoring() {
	if d != nil && d.stage != nil {
		d.stage.keepRoot = true
	}
}

// restoreIdentities returns the keys that open an encrypted backup (nil for one that is not):
// the passphrase opens its sealed key, else the identities given. Neither given is a usage
// error naming the backup: nothing was changed.
func restoreIdentities(dir, backup string, meta *layout.Metadata, o RestoreOptions) (*encryption.Identities, error) {
	enc := meta.Encryption
	if enc == nil {
		return nil, nil
	}
	if enc.Format != encryption.Format {
		return nil, fmt.Errorf("backup %s: %s: encryption format %q: this tool reads %q", backup, layout.FileMetadata, enc.Format, encryption.Format)
	}
	if o.Passphrase != "" && enc.Mode == encryption.ModePassphrase {
		return openKeyFile(filepath.Join(dir, filepath.FromSlash(keyFileOf(enc))), backup, o.Passphrase)
	}
	if o.Identities == nil {
		return nil, outcome.Usagef("backup %s: %s; nothing was changed", backup, encryption.ErrNoIdentity)
	}
	return o.Identities, nil
}

// keyFileOf is a passphrase backup's sealed key, by the metadata or by default.
func keyFileOf(enc *layout.Encryption) string {
	if enc.Key != "" && !strings.Contains(enc.Key, "..") && !path.IsAbs(enc.Key) {
		return enc.Key
	}
	return encryption.KeyFile
}

// openKeyFile opens a passphrase backup's sealed key; a wrong passphrase is a refusal.
func openKeyFile(name, backup, passphrase string) (*encryption.Identities, error) {
	sealed, err := storage.ReadRegular(name, encryption.MaxSealedKeySize)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", backup, err)
	}
	return openSealed(sealed, backup, passphrase)
}

func openSealed(sealed []byte, backup, passphrase string) (*encryption.Identities, error) {
	id, err := encryption.OpenKey(sealed, passphrase)
	if errors.Is(err, encryption.ErrWrongKey) {
		return nil, outcome.Errorf(outcome.Refused, "backup %s: %s: %w; nothing was changed", backup, encryption.KeyFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: %s: %w", backup, encryption.KeyFile, err)
	}
	return encryption.IdentitiesOf(id), nil
}

// OpenBackupKey opens the sealed key of the passphrase backup at src (a folder or an S3
// prefix) with passphrase, so that a command can hand the key to its in-process workers
// before the restore starts. It returns nil without error when src holds no sealed key (a
// backup encrypted to recipients, or not at all).
func OpenBackupKey(ctx context.Context, src, passphrase string) (*encryption.Identities, error) {
	if !storage.IsS3(src) {
		sealed, err := storage.ReadRegular(filepath.Join(src, encryption.KeyFile), encryption.MaxSealedKeySize)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("backup %s: %w", src, err)
		}
		return openSealed(sealed, src, passphrase)
	}
	parent, name, err := splitLocation(src)
	if err != nil {
		return nil, err
	}
	b, err := storage.Open(ctx, parent)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	r, _, err := b.Open(ctx, name+"/"+encryption.KeyFile)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("backup %s: %s: %w", redact.URL(src), encryption.KeyFile, err)
	}
	defer r.Close()
	sealed, err := storage.ReadLimited(r, encryption.MaxSealedKeySize)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %s: %w", redact.URL(src), encryption.KeyFile, err)
	}
	return openSealed(sealed, redact.URL(src), passphrase)
}

// openDecrypt checks the plaintext manifest's segments against SHA256SUMS and opens them with
// ids. A key that opens none of them is a refusal naming the backup: nothing was changed.
func openDecrypt(ctx context.Context, dir, backup string, meta *layout.Metadata, sums *layout.Sums, ids *encryption.Identities, work *restoreWork) (*restoreDecrypt, error) {
	if sums == nil {
		return nil, fmt.Errorf("backup %s is encrypted but has no %s: nothing is restored", backup, layout.FileSums)
	}
	segs := meta.Encryption.PlainSums
	if err := checkSums(ctx, dir, sums, meta, segs, 2); err != nil {
		return nil, err
	}
	plain, err := layout.OpenPlainSums(ctx, dir, segs, ids, work.spill())
	if errors.Is(err, encryption.ErrWrongKey) {
		return nil, outcome.Errorf(outcome.Refused, "backup %s: %w; nothing was changed", backup, err)
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", backup, err)
	}
	fx := filepath.Join(work.dir, "fixtures")
	if err := os.Mkdir(fx, 0o700); err != nil {
		plain.Close()
		return nil, fmt.Errorf("restore work folder: %w", err)
	}
	return &restoreDecrypt{ids: ids, plain: plain, fixtures: fx}, nil
}

// storedFixture is the name a model's fixture has in the backup.
func storedFixture(meta *layout.Metadata, m platform.Model) string {
	if meta.Encryption != nil {
		return m.FixtureName() + encryption.Ext
	}
	return m.FixtureName()
}

// fixtureDir is where the restore reads the fixtures from: the backup, or the work folder
// the encrypted ones were decrypted into.
func fixtureDir(dir string, dec *restoreDecrypt) string {
	if dec != nil {
		return dec.fixtures
	}
	return dir
}

// decryptFixtures decrypts each fixture (stored names) into dec.fixtures (0600), checking
// its stored bytes against SHA256SUMS and the metadata, and its plaintext against the
// plaintext manifest.
func decryptFixtures(ctx context.Context, dir string, sums *layout.Sums, meta *layout.Metadata, stored []string, dec *restoreDecrypt, workers int) error {
	modelSums := map[string]string{}
	for _, e := range meta.Models {
		modelSums[e.File] = e.SHA256
	}
	for _, p := range stored {
		if _, ok := sums.Top[p]; !ok {
			return fmt.Errorf("%s is not listed in %s: it cannot be verified", p, layout.FileSums)
		}
	}
	found := newAgeResults()
	hash := func(ctx context.Context, rel string) (string, int64, error) {
		out, err := os.OpenFile(filepath.Join(dec.fixtures, strings.TrimSuffix(rel, encryption.Ext)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return "", 0, err
		}
		defer out.Close()
		return found.hashFile(ctx, filepath.Join(dir, rel), rel, dec.ids, out)
	}
	return layout.HashEachWith(ctx, hash, min(workers, len(stored)), func(send func(string, string) error) error {
		for _, p := range stored {
			if err := send(p, dec.plain.Top[strings.TrimSuffix(p, encryption.Ext)]); err != nil {
				return err
			}
		}
		return nil
	}, func(rel, plainWant, _ string, _ int64, err error) error {
		if err := found.check(rel, sums.Top[rel], plainWant, err); err != nil {
			return err
		}
		if want := modelSums[rel]; want != "" && sums.Top[rel] != want {
			return fmt.Errorf("%s: %s says its SHA-256 is %s, %s says %s", rel, layout.FileSums, sums.Top[rel], layout.FileMetadata, want)
		}
		return nil
	})
}

// ageResults passes each file's two sums from the hashing goroutines to the serialized check
// (which layout.HashEachWith calls with one sum only): it holds the files in flight.
type ageResults struct {
	mu sync.Mutex
	m  map[string]layout.AgeSums
}

func newAgeResults() *ageResults { return &ageResults{m: map[string]layout.AgeSums{}} }

// hash decrypts the age file r into sink (if set), keeping its sums under id for check. Only
// the plaintext is hashed (layout.DecryptAge): a file that does not decrypt is hashed as stored
// again by rehash, so that check tells a file changed since the backup (SHA256SUMS) from one
// damaged with it.
func (a *ageResults) hash(ctx context.Context, id string, r io.Reader, ids *encryption.Identities, sink io.Writer, rehash func(context.Context) (string, error)) (string, int64, error) {
	s, err := layout.DecryptAge(ctx, r, ids, sink)
	if err == nil && s.Decrypt != nil {
		s.Stored, err = rehash(ctx)
	}
	a.put(id, s)
	return s.Stored, s.PlainSize, err
}

// rehashFile is a rehash of the file at name.
func rehashFile(name string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		sum, _, err := layout.HashFile(ctx, name)
		return sum, err
	}
}

// put keeps s under id for check.
func (a *ageResults) put(id string, s layout.AgeSums) {
	a.mu.Lock()
	a.m[id] = s
	a.mu.Unlock()
}

// hashFile is hash of the file at name, kept under rel.
func (a *ageResults) hashFile(ctx context.Context, name, rel string, ids *encryption.Identities, sink io.Writer) (string, int64, error) {
	f, err := storage.OpenRegular(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return a.hash(ctx, rel, f, ids, sink, rehashFile(name))
}

// check takes rel's sums and compares them with what SHA256SUMS (want) and the plaintext
// manifest (plainWant, "" when it does not list the file) say, naming the file.
func (a *ageResults) check(rel, want, plainWant string, err error) error {
	return a.checkAs(rel, rel, want, plainWant, err)
}

// checkAs is check of the sums kept under id, for the file rel.
func (a *ageResults) checkAs(id, rel, want, plainWant string, err error) error {
	a.mu.Lock()
	s := a.m[id]
	delete(a.m, id)
	a.mu.Unlock()
	switch {
	case err != nil:
		return fmt.Errorf("check %s: %w", storage.QuoteKey(rel), err)
	case s.Stored != "" && s.Stored != want:
		return fmt.Errorf("%s is corrupt: its SHA-256 is %s, %s says %s", storage.QuoteKey(rel), s.Stored, layout.FileSums, want)
	case s.Decrypt != nil:
		return fmt.Errorf("%s cannot be decrypted: %w", storage.QuoteKey(rel), s.Decrypt)
	case plainWant == "":
		return fmt.Errorf("%s is not in the backup's manifest of plaintext sums (%s): its content cannot be verified", storage.QuoteKey(rel), layout.PlainSumsDir)
	case s.Plain != plainWant:
		return fmt.Errorf("%s is corrupt: its plaintext's SHA-256 is %s, the backup's manifest of plaintext sums says %s", storage.QuoteKey(rel), s.Plain, plainWant)
	}
	return nil
}
