package pipeline_test

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/internal/verify"
)

// Real encrypted backups, end to end: a chain of two (the second reuses the first's files,
// one changed between them) written by the tool to a local folder or the S3 object store,
// with recipients or a passphrase; with the first backup deleted, the second verifies without
// a key (stored bytes) and with one (plaintext, end to end), and restores exactly what an
// unencrypted backup taken at the same moment holds.
func TestEncryptedChainRestoresAndVerifies(t *testing.T) {
	tests := []struct {
		name       string
		engine     string
		s3         bool
		passphrase string
	}{
		{"sqlite local", database.SQLite, false, ""},
		{"postgres local", database.Postgres, false, ""},
		{"sqlite s3 objects", database.SQLite, true, ""},
		{"sqlite local passphrase", database.SQLite, false, "correct horse battery staple"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filledPlatform(t, tc.engine, demo.DefaultOptions())
			s := startSession(t, p, 2, queue.Config{})
			key := newAgeKey(t)
			dest := t.TempDir()
			if tc.s3 {
				dest = s3test.Start(t, nil, "backups").URL("backups", "enc", "")
			}
			backup := func(dir string, encrypt bool) string {
				t.Helper()
				o := coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dir, ChunkRows: 40}
				if encrypt && tc.passphrase != "" {
					o.Passphrase = tc.passphrase
				} else if encrypt {
					o.Recipients = key.recipients(t)
				}
				rep, err := s.Coordinator.Backup(context.Background(), o)
				if err != nil {
					t.Fatalf("backup: %v", err)
				}
				return rep.Path
			}
			first := backup(dest, true)
			changed := firstStorageFile(t, p.storage)
			writeFile(t, changed, []byte("a new version of the chapter"))
			second := backup(dest, true)
			plain := backup(t.TempDir(), false)
			meta := readBackupMetadata(t, dest, second)
			if meta.Encryption == nil || meta.Files.Reused.Files == 0 || meta.Files.New.Files == 0 || len(meta.Encryption.PlainSums) != 2 {
				t.Fatalf("second backup: encryption %+v, new %+v, reused %+v", meta.Encryption, meta.Files.New, meta.Files.Reused)
			}
			if !tc.s3 {
				if err := os.RemoveAll(first); err != nil { // any folder can be deleted alone
					t.Fatal(err)
				}
			}

			vo := verify.Options{Workers: 2}
			if tc.s3 {
				vo.Objects = dest
			}
			rep, err := verify.At(context.Background(), second, vo)
			if err != nil {
				t.Fatalf("verify without a key: %v", err)
			}
			if !rep.OK {
				t.Fatalf("verify without a key: %+v %q", rep.Checks, rep.Problems)
			}
			vo.Decrypt, vo.Identities, vo.Passphrase = true, key.identities(t), tc.passphrase
			if tc.passphrase != "" {
				vo.Identities = nil
			}
			if rep, err = verify.At(context.Background(), second, vo); err != nil {
				t.Fatalf("verify --decrypt: %v", err)
			}
			if !rep.OK || rep.Files == 0 {
				t.Fatalf("verify --decrypt: %+v %q", rep.Checks, rep.Problems)
			}

			target := emptyTarget(t, tc.engine)
			o := coordinator.RestoreOptions{Source: second, Identities: key.identities(t), Passphrase: tc.passphrase}
			workerIDs := o.Identities
			if tc.passphrase != "" {
				o.Identities = nil
				if workerIDs, err = coordinator.OpenBackupKey(context.Background(), second, tc.passphrase); err != nil {
					t.Fatal(err)
				}
			}
			rr, err := restoreWithKeys(t, target, o, workerIDs)
			if err != nil || rr.Failed != 0 {
				t.Fatalf("restore: %v (%d failed)", err, rr.Failed)
			}
			compareWithBackup(t, plain, target)
		})
	}
}

// firstStorageFile is some file of the platform's storage folder.
func firstStorageFile(t *testing.T, storage string) string {
	t.Helper()
	for k := range treeFiles(t, storage) {
		return filepath.Join(storage, filepath.FromSlash(k))
	}
	t.Fatal("the storage holds no file")
	return ""
}

// readBackupMetadata reads the metadata of the backup at loc (a folder or an S3 location)
// in the destination dest.
func readBackupMetadata(t *testing.T, dest, loc string) *layout.Metadata {
	t.Helper()
	where, _, _ := strings.Cut(loc, "?")
	meta, err := layout.ParseMetadata(readKey(t, dest, path.Base(where)+"/"+layout.FileMetadata))
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

// identities reads the key's identity file as the command line does.
func (k ageKey) identities(t *testing.T) *encryption.Identities {
	t.Helper()
	ids, err := encryption.ReadIdentityFile(k.file)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// An encrypted copy changed in place in the base (same size, so only its time says so) is not
// linked into the next backup: the file is encrypted again, and the new backup verifies.
func TestEncryptedCopyChangedInPlaceIsNotReused(t *testing.T) {
	p := filledPlatform(t, database.SQLite, demo.DefaultOptions())
	s := startSession(t, p, 2, queue.Config{})
	key := newAgeKey(t)
	dest := t.TempDir()
	backup := func() *coordinator.BackupReport {
		t.Helper()
		rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: dest, Recipients: key.recipients(t)})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		return rep
	}
	first := backup()
	copies, err := filepath.Glob(filepath.Join(first.Path, layout.FilesDir, "*", "*.age"))
	if err != nil || len(copies) == 0 {
		t.Fatalf("no encrypted copies in %s: %v", first.Path, err)
	}
	f, err := os.OpenFile(copies[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	f.WriteAt([]byte{0xff}, fi.Size()-5) // the size stays; the time is now
	f.Close()
	time.Sleep(1100 * time.Millisecond) // backup names are per second
	second := backup()
	if meta := readMetadata(t, second.Path); meta.Files.New.Files != 1 {
		t.Errorf("the second backup stored %d files anew, want the one changed in the base", meta.Files.New.Files)
	}
	rep, err := verify.At(context.Background(), second.Path, verify.Options{})
	if err != nil || !rep.OK {
		t.Fatalf("the second backup: %v %+v", err, rep)
	}
}
