package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// An encrypted compressed backup is one age file, backup_X.tar.gz.age (.tar.zst.age,
// .tar.age), that holds a normal archive: `age -d -i key.txt FILE | tar xz` opens it. The
// workers encrypt their parts to the run's ephemeral key (the staging area never holds a
// file's plaintext); the publish decrypts each part in memory and streams head, parts and end
// through one age writer to the backup's recipients. Beside the archive, its sidecar
// backup_X.tar.gz.age.json holds the metadata in the clear with the .age bytes' SHA-256 and
// size, written last: an encrypted archive without its sidecar is incomplete.

// archiveSeal is how the publish encrypts an archive.
type archiveSeal struct {
	// encrypt starts the age stream to the backup's recipients (or passphrase).
	encrypt func(w io.Writer) (io.WriteCloser, error)
	// parts reads the staged parts (the run key).
	parts *encryption.Identities
	// info is the metadata's encryption, for the sidecar.
	info *layout.Encryption
	// fixtures are the plaintext sizes of the staged fixtures (by name), which are encrypted to
	// the run key too.
	fixtures map[string]int64
}

// entries decrypts the staged fixtures into the archive's head, each with its plaintext size
// (the tar header comes before the content).
func (s *archiveSeal) entries() archive.Option {
	return archive.WithEntryReader(func(name string, stored io.Reader) (io.Reader, int64, bool, error) {
		size, ok := s.fixtures[name]
		if !ok {
			return nil, 0, false, nil
		}
		plain, err := s.parts.Decrypt(stored)
		if errors.Is(err, encryption.ErrWrongKey) {
			return nil, 0, false, fmt.Errorf("the staged fixture was encrypted to the run key of an earlier coordinator of this run, which is gone with it: start a new backup: %w", err)
		}
		return plain, size, err == nil, err
	})
}

// beforeSealedPublish, when a test sets it, is called with the staging area's location before
// an encrypted archive is published: what the run left there.
var beforeSealedPublish func(staging string)

// SetBeforeSealedPublish makes fn see the staging area's location (a local folder or an s3://
// URL) just before its encrypted archive is published, for tests that check what the staging
// area holds; the returned function removes it.
func SetBeforeSealedPublish(fn func(staging string)) (reset func()) {
	beforeSealedPublish = fn
	return func() { beforeSealedPublish = nil }
}

// archiveEncrypted reports whether the run's archive is encrypted.
func (r *backupRun) archiveEncrypted() bool {
	return r.o.Compress && (r.o.Recipients != nil || r.o.Passphrase != "")
}

// archiveRunKey is the run's ephemeral key, made on first use. It lives in this process only:
// a resumed run makes a new one.
func (r *backupRun) archiveRunKey() (*encryption.RunKey, error) {
	if r.runKey == nil {
		k, err := encryption.NewRunKey()
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		r.runKey = k
	}
	return r.runKey, nil
}

// sealParts makes the copy tasks of an encrypted archive encrypt their parts to the run key.
// Parts a previous coordinator of the run wrote are encrypted to its key, which died with it:
// those tasks run again.
func (r *backupRun) sealParts(copies []*messages.Task) error {
	if !r.archiveEncrypted() {
		return nil
	}
	k, err := r.archiveRunKey()
	if err != nil {
		return err
	}
	for _, t := range copies {
		t.Copy.Recipients = []string{k.Recipient()}
		delete(r.done, t.ID)
	}
	return nil
}

// sealArchive tells the publish how to encrypt the archive (nothing for a plain one).
func (r *backupRun) sealArchive(ctx context.Context, p *publishOptions) error {
	if !r.archiveEncrypted() {
		return nil
	}
	k, err := r.archiveRunKey()
	if err != nil {
		return err
	}
	meta, err := readMetadata(ctx, r.stage.Bucket(), layout.FileMetadata)
	if err != nil {
		return fmt.Errorf("backup: the staged backup: %w", err)
	}
	s := &archiveSeal{parts: k.Identities(), fixtures: map[string]int64{}}
	for _, m := range meta.Models {
		s.fixtures[m.File] = m.Bytes
	}
	if rc := r.o.Recipients; rc != nil {
		s.encrypt = rc.Encrypt
		s.info = &layout.Encryption{Format: encryption.Format, Mode: encryption.ModeRecipients, Recipients: rc.Public()}
	} else {
		// The passphrase directly (age's scrypt recipient): `age -d FILE` asks for it.
		sr, err := age.NewScryptRecipient(r.o.Passphrase)
		if err != nil {
			return fmt.Errorf("backup: passphrase: %w", err)
		}
		s.encrypt = func(w io.Writer) (io.WriteCloser, error) { return age.Encrypt(w, sr) }
		s.info = &layout.Encryption{Format: encryption.Format, Mode: encryption.ModePassphrase, Recipients: []string{}}
	}
	p.seal = s
	return nil
}

// sealedWriter is the age stream of an archive being published, hashing and counting the
// bytes it stores.
type sealedWriter struct {
	age   io.WriteCloser
	out   *asyncWriter // hashes, counts and stores the ciphertext while age encrypts more
	once  sync.Once
	sum   hash.Hash
	count *countWriter
}

// newSealedWriter starts the age stream into out; release must be called when done.
func newSealedWriter(out io.Writer, s *archiveSeal) (*sealedWriter, error) {
	w := &sealedWriter{sum: sha256.New()}
	w.count = &countWriter{w: io.MultiWriter(out, w.sum)}
	w.out = newAsyncWriter(w.count)
	var err error
	if w.age, err = s.encrypt(w.out); err != nil {
		w.release()
		return nil, fmt.Errorf("encrypt the archive: %w", err)
	}
	return w, nil
}

// finish ends the age stream and waits until all of it is stored.
func (w *sealedWriter) finish() error {
	if err := w.age.Close(); err != nil {
		w.release()
		return err
	}
	var err error
	w.once.Do(func() { err = w.out.Close() })
	return err
}

// release stops the storing goroutine (after finish, a no-op).
func (w *sealedWriter) release() { w.once.Do(func() { w.out.Close() }) }

// info is what the sidecar records of the stored bytes (after Close).
func (w *sealedWriter) info() *layout.ArchiveInfo {
	return &layout.ArchiveInfo{SHA256: hex.EncodeToString(w.sum.Sum(nil)), Bytes: w.count.n}
}

// sealedArchive streams the archive through w: head (written by head), every staged part
// decrypted with the run key, the end; then closes the age stream.
func sealedArchive(ctx context.Context, w *sealedWriter, m *archiveManifest, comp archive.Compression, s *archiveSeal, p publishOptions,
	head func(io.Writer) error, open func(key string) (io.ReadCloser, error)) error {
	defer w.release()
	if err := head(w.age); err != nil {
		return fmt.Errorf("write the archive's first part: %w", err)
	}
	for _, key := range m.Parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := copyPart(w.age, key, s.parts, open)
		if err != nil {
			return err
		}
		if p.archived != nil {
			p.archived(n)
		}
	}
	if err := archive.WriteEnd(w.age, comp); err != nil {
		return fmt.Errorf("write the archive's end: %w", err)
	}
	if err := w.finish(); err != nil {
		return fmt.Errorf("encrypt the archive: %w", err)
	}
	return nil
}

// copyPart decrypts one staged part into w.
func copyPart(w io.Writer, key string, ids *encryption.Identities, open func(key string) (io.ReadCloser, error)) (int64, error) {
	rc, err := open(key)
	if err != nil {
		return 0, fmt.Errorf("archive part %s: %w", key, err)
	}
	defer rc.Close()
	plain, err := ids.Decrypt(rc)
	if errors.Is(err, encryption.ErrWrongKey) {
		return 0, fmt.Errorf("archive part %s was encrypted to the run key of an earlier coordinator of this run, which is gone with it: start a new backup: %w", key, err)
	}
	if err != nil {
		return 0, fmt.Errorf("archive part %s: %w", key, err)
	}
	ahead := newReadAhead(plain) // decrypts while the caller encrypts
	defer ahead.Close()
	n, err := io.Copy(w, ahead)
	if err != nil {
		return n, fmt.Errorf("archive part %s: %w", key, err)
	}
	return n, nil
}

// sidecar is the metadata of the staged backup with the encryption and the stored bytes'
// sum and size.
func sidecar(ctx context.Context, stage *storage.Bucket, s *archiveSeal, info *layout.ArchiveInfo) ([]byte, error) {
	meta, err := readMetadata(ctx, stage, layout.FileMetadata)
	if err != nil {
		return nil, fmt.Errorf("write the sidecar: %w", err)
	}
	if meta.Encryption == nil {
		meta.Encryption = s.info
	}
	meta.Archive = info
	data, err := meta.Marshal()
	if err != nil {
		return nil, fmt.Errorf("write the sidecar: %w", err)
	}
	return data, nil
}

// publishSealedArchive publishes a local staged backup as an encrypted archive (a temporary
// file linked to its name once whole), then writes its sidecar. A predecessor that finished
// (the sidecar names the run) leaves only the staging area to remove.
func (d *localDestination) publishSealedArchive(ctx context.Context, m *archiveManifest, comp archive.Compression, p publishOptions) (string, error) {
	name := m.Top + comp.Ext() + layout.EncryptedExt
	final := filepath.Join(d.backupDir, name)
	if meta, err := d.finishSealed(ctx, name, p.seal); err != nil || meta != nil {
		if err != nil {
			return "", err
		}
		return final, d.stage.Abort()
	}
	// Not published: a predecessor's sidecar waiting for its archive is stale.
	if err := os.Remove(d.sidecarTemp(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove a partial sidecar: %w", err)
	}
	if p.named != nil {
		// Recorded, so that a resume after the link (the staging area gone with it) looks for
		// the archive and finishes its sidecar.
		if err := p.named(ctx, m.Top); err != nil {
			return "", fmt.Errorf("record the backup's name: %w", err)
		}
	}
	if beforeSealedPublish != nil {
		beforeSealedPublish(d.stage.Path())
	}
	if p.archiveTotal != nil {
		p.archiveTotal(d.partsSize(m))
	}
	var info *layout.ArchiveInfo
	_, err := d.stage.PublishFile(name, func(f *os.File) error {
		w, err := newSealedWriter(f, p.seal)
		if err != nil {
			return err
		}
		skip := func(rel string) bool { return rel == internalDir }
		head := func(out io.Writer) error {
			_, err := archive.WriteHead(ctx, out, comp, d.stage.Path(), m.Top, skip, p.seal.entries())
			return err
		}
		open := func(key string) (io.ReadCloser, error) {
			return os.Open(filepath.Join(d.stage.Path(), filepath.FromSlash(key)))
		}
		if err := sealedArchive(ctx, w, m, comp, p.seal, p, head, open); err != nil {
			return err
		}
		info = w.info()
		// The sidecar is made now: the staging area (and its metadata) goes with the link.
		return d.writeSidecarTemp(ctx, name, p.seal, info)
	})
	if err != nil {
		os.Remove(d.sidecarTemp(name))
	}
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("the backup name %s was taken by another backup while this one ran: %w", name, err)
	}
	if err != nil {
		return "", err
	}
	halt(ctx, "sealed")
	if err := d.linkSidecar(name); err != nil {
		return final, err
	}
	return final, nil
}

// finishSealed finishes the publication of the run's encrypted archive name, if a predecessor
// killed after linking it left it: its sidecar names the run, or waits under its temporary
// name (written before the archive was linked) and is linked now. It returns the sidecar's
// metadata; nil: the archive is not there, or not this run's.
func (d *localDestination) finishSealed(ctx context.Context, name string, _ *archiveSeal) (*layout.Metadata, error) {
	if _, err := os.Stat(filepath.Join(d.backupDir, name)); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("publish %s: %w", name, err)
	}
	meta, err := readSidecarFile(filepath.Join(d.backupDir, layout.SidecarName(name)))
	if err == nil {
		if meta.RunID != d.run {
			return nil, nil // another backup's: the link will refuse the name, naming it
		}
		return meta, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("publish %s: sidecar: %w", name, err)
	}
	meta, err = readSidecarFile(d.sidecarTemp(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("publish %s: sidecar: %w", name, err)
	}
	if err := d.linkSidecar(name); err != nil {
		return nil, err
	}
	return meta, nil
}

// sidecarTemp is where a local sidecar waits, in the staging folder's parent, for its archive.
func (d *localDestination) sidecarTemp(name string) string {
	return filepath.Join(d.backupDir, ".wnb-sidecar-"+d.run+"-"+name+".tmp")
}

// writeSidecarTemp writes the sidecar under a temporary name beside the backups.
func (d *localDestination) writeSidecarTemp(ctx context.Context, name string, s *archiveSeal, info *layout.ArchiveInfo) error {
	data, err := sidecar(ctx, d.bucket, s, info)
	if err != nil {
		return err
	}
	tmp := d.sidecarTemp(name)
	if err := os.WriteFile(tmp, data, layout.FileMode); err != nil {
		return fmt.Errorf("write the sidecar: %w", err)
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("write the sidecar: %w", err)
	}
	return nil
}

// linkSidecar gives the sidecar its name, after the archive got its own: the backup is then
// complete.
func (d *localDestination) linkSidecar(name string) error {
	tmp := d.sidecarTemp(name)
	defer os.Remove(tmp)
	if err := os.Link(tmp, filepath.Join(d.backupDir, layout.SidecarName(name))); err != nil {
		return fmt.Errorf("publish %s: sidecar: %w", name, err)
	}
	if err := syncPath(d.backupDir); err != nil {
		return fmt.Errorf("publish %s: sidecar: %w", name, err)
	}
	return nil
}

// publishSealedArchive publishes the S3 staged backup as one encrypted archive object (a
// streamed multipart upload, visible only once complete), then its sidecar.
func (d *s3Destination) publishSealedArchive(ctx context.Context, m *archiveManifest, comp archive.Compression, objs []storage.Object, p publishOptions) (string, error) {
	final := m.Top + comp.Ext() + layout.EncryptedExt
	if p.name != "" {
		// A resumed publish: the archive may be whole already (its name was recorded first).
		if meta, err := d.finishSealed(ctx, final, p.seal); err != nil || meta != nil {
			return final, err
		}
	}
	aobjs, err := d.archiveObjects(ctx, objs)
	if err != nil {
		return "", err
	}
	if beforeSealedPublish != nil {
		beforeSealedPublish(d.location)
	}
	out, err := d.root.Create(ctx, final, storage.Object{Mode: layout.FileMode, ModTime: time.Now()})
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	defer out.Abort() // after Commit, a no-op
	w, err := newSealedWriter(out, p.seal)
	if err != nil {
		return "", err
	}
	open := func(key string) (io.ReadCloser, error) {
		r, _, err := d.bucket.Open(ctx, key)
		return r, err
	}
	head := func(hw io.Writer) error {
		_, err := archive.WriteObjectsHead(ctx, hw, comp, m.Top, aobjs, open, p.seal.entries())
		return err
	}
	if err := sealedArchive(ctx, w, m, comp, p.seal, p, head, open); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	if err := out.Commit(); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	halt(ctx, "sealed")
	if _, err := d.putSidecar(ctx, final, p.seal, w.info()); err != nil {
		return "", err
	}
	return final, nil
}

// putSidecar writes the sidecar of the archive final from the staged metadata.
func (d *s3Destination) putSidecar(ctx context.Context, final string, s *archiveSeal, info *layout.ArchiveInfo) (*layout.Metadata, error) {
	data, err := sidecar(ctx, d.bucket, s, info)
	if err != nil {
		return nil, err
	}
	if _, err := d.root.Put(ctx, layout.SidecarName(final), bytes.NewReader(data), storage.Object{Mode: layout.FileMode}); err != nil {
		return nil, fmt.Errorf("publish %s: sidecar: %w", final, err)
	}
	return layout.ParseMetadata(data)
}

// finishSealed finishes the publication of the run's encrypted archive final, whose name the
// run recorded before writing it, if a predecessor killed after its upload completed left it:
// its sidecar names the run, or is written now from the staged metadata (with s) and the
// archive's bytes. It returns the sidecar's metadata; nil: the archive is not there, or not
// this run's.
func (d *s3Destination) finishSealed(ctx context.Context, final string, s *archiveSeal) (*layout.Metadata, error) {
	if _, err := d.root.Stat(ctx, final); errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("publish %s: %w", final, err)
	}
	meta, err := readMetadata(ctx, d.root, layout.SidecarName(final))
	if err == nil {
		if meta.RunID != strings.TrimPrefix(d.staging, layout.StagingPrefix) {
			return nil, nil
		}
		return meta, nil
	}
	if !errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("publish %s: sidecar: %w", final, err)
	}
	if _, err := d.bucket.Stat(ctx, layout.FileMetadata); s == nil || err != nil {
		return nil, fmt.Errorf("publish %s: the archive has no sidecar, and the staged metadata it is made from is gone: remove the archive and start a new backup", final)
	}
	info, err := hashStored(ctx, d.root, final)
	if err != nil {
		return nil, fmt.Errorf("publish %s: sidecar: %w", final, err)
	}
	return d.putSidecar(ctx, final, s, info)
}

// hashStored is the sha256 and size of an object, as a sidecar records them.
func hashStored(ctx context.Context, b *storage.Bucket, key string) (*layout.ArchiveInfo, error) {
	rc, _, err := b.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return &layout.ArchiveInfo{SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: n}, nil
}

// finishedSealed is finishedPublish for an encrypted archive: the archive name+ext is the
// run's, published by a predecessor (its sidecar is finished now if it was missing). nil: it
// is not.
func (r *backupRun) finishedSealed(ctx context.Context, name string) (*BackupReport, error) {
	f, ok := r.stage.(sealedFinisher)
	if !ok {
		return nil, nil
	}
	meta, err := f.finishSealed(ctx, name, nil)
	if err != nil || meta == nil {
		return nil, err
	}
	return reportOf(r.o.RunID, meta), nil
}

// sealedFinisher finishes an encrypted archive's publication that a killed predecessor cut
// short after the archive was whole.
type sealedFinisher interface {
	finishSealed(ctx context.Context, name string, s *archiveSeal) (*layout.Metadata, error)
}

// readSidecarFile reads a local sidecar.
func readSidecarFile(file string) (*layout.Metadata, error) {
	data, err := storage.ReadRegular(file, layout.MaxMetadataSize)
	if err != nil {
		return nil, err
	}
	return layout.ParseMetadata(data)
}

// syncPath makes a file's content, or a folder's entries, durable.
func syncPath(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
