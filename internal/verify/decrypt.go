package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/storage"
)

// CheckPlaintext is the check of an encrypted backup's content (verify --decrypt): every
// fixture and file decrypts, and its plaintext has the sum the backup's encrypted manifest of
// plaintext sums gives.
const CheckPlaintext = "plaintext"

// encrypted reports whether the metadata says the backup is age-encrypted.
func (v *verifier) encrypted() bool { return v.meta != nil && v.meta.Encryption != nil }

// decrypting reports whether this verification reads the plaintext (--decrypt, with keys).
func (v *verifier) decrypting() bool { return v.encrypted() && v.o.Decrypt }

// keys returns the identities that open the backup: the passphrase opens a passphrase
// backup's sealed key, else the identities given. None is a usage error.
func (v *verifier) keys() (*encryption.Identities, error) {
	enc := v.meta.Encryption
	if v.o.Passphrase != "" && enc.Mode == encryption.ModePassphrase {
		sealed, err := storage.ReadRegular(filepath.Join(v.dir, encryption.KeyFile), encryption.MaxSealedKeySize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", encryption.KeyFile, pathless(err))
		}
		id, err := encryption.OpenKey(sealed, v.o.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", encryption.KeyFile, err)
		}
		return encryption.JoinIdentities(v.o.Identities, encryption.IdentitiesOf(id)), nil
	}
	if v.o.Identities == nil {
		return nil, outcome.Usagef("verify --decrypt: %s", encryption.ErrNoIdentity)
	}
	return v.o.Identities, nil
}

// checkPlaintext decrypts every .age file SHA256SUMS lists (an object-store backup's files
// from their objects) and compares its plaintext with the manifest of plaintext sums, joined
// with SHA256SUMS as two streams in path order. The fixtures' plaintext is kept in a private
// folder for the fixtures check. The error is for what stops the check: no key, ctx.
func (v *verifier) checkPlaintext(ctx context.Context, objects *storage.Bucket) error {
	ids, err := v.keys()
	if err != nil {
		return err
	}
	if v.sums == nil {
		v.add(CheckPlaintext, false, "not checked", []string{layout.FileSums + ": missing: the plaintext cannot be checked"})
		return nil
	}
	plain, err := layout.OpenPlainSums(ctx, v.dir, v.meta.Encryption.PlainSums, ids, v.spill)
	if errors.Is(err, encryption.ErrWrongKey) {
		return err
	}
	if err != nil {
		v.add(CheckPlaintext, false, "manifest of plaintext sums unreadable", []string{err.Error()})
		return nil
	}
	defer plain.Close()
	if v.plainDir, err = os.MkdirTemp(v.spill, "plain-"); err != nil {
		return fmt.Errorf("plaintext folder: %w", err)
	}
	problems, files, err := v.joinPlain(ctx, plain, ids, objects)
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("%d files decrypted, %s of plaintext", files, humanBytes(v.plainBytes))
	v.add(CheckPlaintext, true, detail, sortedMessages(problems))
	return nil
}

// plainJob is one encrypted file to decrypt and the sums it must have.
type plainJob struct {
	rel, stored, plain string
	fixture            bool
}

// joinPlain joins SHA256SUMS's .age lines with the plaintext manifest and decrypts each file.
func (v *verifier) joinPlain(ctx context.Context, plain *layout.PlainSums, ids *encryption.Identities, objects *storage.Bucket) (problems []problem, files int64, err error) {
	fixtures := map[string]bool{}
	for _, m := range v.meta.Models {
		fixtures[m.File] = true
	}
	eachStored := func(fn func(p, sum string) error) error {
		return v.sums.Each(func(p, sum string) error {
			if !strings.HasSuffix(p, encryption.Ext) || strings.HasPrefix(p, layout.PlainSumsDir+"/") || p == encryption.KeyFile {
				return nil
			}
			return fn(p, sum)
		})
	}
	var joinProblems []problem
	feed := func(send func(string, plainJob) error) error {
		return layout.Join(eachStored, plain.Each, func(p, sum string, listed bool, want string, known bool) error {
			switch {
			case !listed:
				return nil // an older segment's file that this backup does not hold
			case !known:
				joinProblems = append(joinProblems, problem{p, fmt.Sprintf("%s: not in the backup's manifest of plaintext sums", p)})
				return nil
			}
			// The job's name carries the stored sum: an object-store file is read from its object.
			return send(p+"\x00"+sum, plainJob{rel: p, stored: sum, plain: want, fixture: fixtures[p]})
		})
	}
	err = v.decryptEach(ctx, ids, objects, feed, func(j plainJob, s layout.AgeSums, err error) {
		files++
		if strings.HasPrefix(j.rel, layout.FilesDir+"/") {
			v.plainBytes += s.PlainSize
		}
		problems = append(problems, checkPlain(j, s, err)...)
	})
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	if err != nil {
		return nil, 0, err
	}
	return append(problems, joinProblems...), files, nil
}

// checkPlain compares one decrypted file's sums with SHA256SUMS and the plaintext manifest.
func checkPlain(j plainJob, s layout.AgeSums, err error) []problem {
	q := storage.QuoteKey(j.rel)
	switch {
	case err != nil:
		return []problem{{j.rel, fmt.Sprintf("%s: cannot read: %v", q, pathless(err))}}
	case s.Stored != j.stored:
		return nil // the checksums check reported it
	case s.Decrypt != nil:
		return []problem{{j.rel, fmt.Sprintf("%s: cannot be decrypted: %v", q, s.Decrypt)}}
	case s.Plain != j.plain:
		return []problem{{j.rel, fmt.Sprintf("%s: plaintext checksum mismatch: the manifest of plaintext sums has %s, the decrypted file has %s", q, j.plain, s.Plain)}}
	}
	return nil
}

// decryptEach decrypts the files feed sends with o.Workers goroutines, calling fn (serialized)
// with each one's sums. A fixture's plaintext is written to v.plainDir.
func (v *verifier) decryptEach(ctx context.Context, ids *encryption.Identities, objects *storage.Bucket,
	feed func(send func(string, plainJob) error) error, fn func(plainJob, layout.AgeSums, error)) error {
	// HashEachWith passes one sum to fn: the goroutines leave both here, by job.
	var mu sync.Mutex
	sums := map[string]layout.AgeSums{}
	hash := func(ctx context.Context, job string) (string, int64, error) {
		rel, sum, _ := strings.Cut(job, "\x00")
		s, err := v.decryptOne(ctx, rel, sum, ids, objects)
		mu.Lock()
		sums[job] = s
		mu.Unlock()
		return s.Stored, s.PlainSize, err
	}
	return layout.HashEachWith(ctx, hash, v.o.Workers, feed, func(job string, j plainJob, _ string, _ int64, err error) error {
		mu.Lock()
		s := sums[job]
		delete(sums, job)
		mu.Unlock()
		fn(j, s, err)
		return nil
	})
}

// decryptOne reads one encrypted file: from the folder, or an object-store backup's file from
// its object; a fixture's plaintext goes to v.plainDir.
func (v *verifier) decryptOne(ctx context.Context, rel, sum string, ids *encryption.Identities, objects *storage.Bucket) (layout.AgeSums, error) {
	var r io.ReadCloser
	var err error
	if objects != nil && strings.HasPrefix(rel, layout.FilesDir+"/") {
		r, _, err = objects.Open(ctx, layout.ObjectKey(sum))
	} else {
		r, err = storage.OpenRegular(filepath.Join(v.dir, filepath.FromSlash(rel)))
	}
	if err != nil {
		return layout.AgeSums{}, err
	}
	defer r.Close()
	var sink io.Writer
	if !strings.Contains(rel, "/") {
		f, err := os.OpenFile(filepath.Join(v.plainDir, strings.TrimSuffix(rel, encryption.Ext)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return layout.AgeSums{}, err
		}
		defer f.Close()
		sink = f
	}
	return layout.HashAge(ctx, r, ids, sink)
}

// checkDecrypted runs the plaintext check when it applies, and says when it does not: an
// encrypted backup verified without --decrypt, or --decrypt on one that is not encrypted.
func (v *verifier) checkDecrypted(ctx context.Context) error {
	switch {
	case v.o.Decrypt && v.meta != nil && !v.encrypted():
		v.warn("--decrypt: the backup is not encrypted: nothing to decrypt")
		return nil
	case v.encrypted() && !v.o.Decrypt:
		v.warn("the backup is encrypted (age): its stored bytes were checked; its fixtures, rows and plaintext are checked by verify --decrypt with its key")
		return nil
	case !v.decrypting():
		return nil
	}
	var objects *storage.Bucket
	if v.objectStore() {
		b, err := storage.Open(ctx, v.objectsRoot())
		if err != nil {
			v.add(CheckPlaintext, false, "object store unreadable", []string{fmt.Sprintf("%s: cannot open the object store: %v", layout.ObjectsDir, err)})
			return nil
		}
		defer b.Close()
		objects = b
	}
	return v.checkPlaintext(ctx, objects)
}
