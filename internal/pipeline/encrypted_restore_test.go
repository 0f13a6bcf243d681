package pipeline_test

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// encryptedBackup is a backup folder encrypted to key, beside a plaintext copy of it.
type encryptedBackup struct {
	dir, plain string
	key        enctest.Key
	sizes      map[string]int64
}

func encryptedBackupOf(t *testing.T, p platformFixture, passphrase string) encryptedBackup {
	t.Helper()
	dir := backupOf(t, p, false)
	plain := copyTree(t, dir)
	k := enctest.NewKey(t)
	return encryptedBackup{dir: dir, plain: plain, key: k, sizes: enctest.Encrypt(t, dir, k, passphrase)}
}

// restoreWithKeys restores into target through in-process workers holding workerIDs.
func restoreWithKeys(t *testing.T, target platformFixture, o coordinator.RestoreOptions, workerIDs *encryption.Identities) (*coordinator.RestoreReport, error) {
	t.Helper()
	return restoreWithKeysIn(t, target, o, workerIDs, t.TempDir())
}

// restoreWithKeysIn is restoreWithKeys with tmp as the restore's temporary folder.
func restoreWithKeysIn(t *testing.T, target platformFixture, o coordinator.RestoreOptions, workerIDs *encryption.Identities, tmp string) (*coordinator.RestoreReport, error) {
	t.Helper()
	s, err := pipeline.Start(context.Background(), pipeline.Config{
		Workers: 2, DatabaseURL: target.dbURL, StorageURL: target.storage, Identities: workerIDs,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o.DatabaseURL, o.StorageURL, o.TempDir = target.dbURL, target.storage, tmp
	return s.Coordinator.Restore(context.Background(), o)
}

// restoreKeys returns the identities the workers of a restore from loc hold: key, or with a
// passphrase, the backup key it seals, which o then opens by the passphrase instead of key.
func restoreKeys(t *testing.T, o *coordinator.RestoreOptions, loc, passphrase string, key *encryption.Identities) *encryption.Identities {
	t.Helper()
	if passphrase == "" {
		return key
	}
	o.Identities, o.Passphrase = nil, passphrase
	ids, err := coordinator.OpenBackupKey(context.Background(), loc, passphrase)
	if err != nil || ids == nil {
		t.Fatalf("open the backup key: %v", err)
	}
	return ids
}

// encryptedPlacements are the places and keys an encrypted backup is restored from: a
// folder, an S3 prefix and an S3 object store, on SQLite and PostgreSQL, with an identity or
// a passphrase.
var encryptedPlacements = []struct {
	name       string
	engine     string
	where      string // folder, s3, objects
	passphrase string
}{
	{"sqlite folder", database.SQLite, "folder", ""},
	{"postgres folder", database.Postgres, "folder", ""},
	{"sqlite s3 prefix", database.SQLite, "s3", ""},
	{"sqlite s3 object store", database.SQLite, "objects", ""},
	{"sqlite folder passphrase", database.SQLite, "folder", "correct horse battery staple"},
}

// placeEncryptedBackup puts backup b where (folder: where it is; s3: uploaded under an S3
// prefix; objects: copied into an S3 object store) and returns its location.
func placeEncryptedBackup(t *testing.T, b encryptedBackup, where string) string {
	t.Helper()
	switch where {
	case "s3":
		s3 := s3test.Start(t, nil, "backups")
		s3test.UploadTree(t, filepath.Dir(b.dir), s3.URL("backups", "nightly", ""))
		return s3.URL("backups", "nightly/"+filepath.Base(b.dir), "")
	case "objects":
		s3 := s3test.Start(t, nil, "backups")
		name := enctest.ObjectStore(t, b.dir, s3.URL("backups", "nightly", ""), b.sizes)
		return s3.URL("backups", "nightly/"+name, "")
	}
	return b.dir
}

// An encrypted backup restores exactly what its plaintext held, from a folder, an S3 prefix
// and an S3 object store, on SQLite and PostgreSQL, with an identity or (a passphrase backup)
// the passphrase; no .age name reaches the storage.
func TestRestoreEncryptedBackup(t *testing.T) {
	for _, tt := range encryptedPlacements {
		t.Run(tt.name, func(t *testing.T) {
			src := filledPlatform(t, tt.engine, demo.DefaultOptions())
			b := encryptedBackupOf(t, src, tt.passphrase)
			loc := placeEncryptedBackup(t, b, tt.where)
			o := coordinator.RestoreOptions{Source: loc, Identities: b.key.Identities}
			workerIDs := restoreKeys(t, &o, loc, tt.passphrase, b.key.Identities)
			target := emptyTarget(t, tt.engine)
			rep, err := restoreWithKeys(t, target, o, workerIDs)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Loaded) != 10 || rep.Files != int64(src.summary.Files) || rep.Failed != 0 {
				t.Fatalf("loaded %d models, %d files (want %d), %d failed", len(rep.Loaded), rep.Files, src.summary.Files, rep.Failed)
			}
			compareWithBackup(t, b.plain, target)
		})
	}
}

// targetState is what a restore may change: the SQLite database's bytes and the storage's files.
func targetState(t *testing.T, target platformFixture) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	db, err := os.ReadFile(strings.TrimPrefix(target.dbURL, "sqlite:///"))
	if err != nil {
		t.Fatal(err)
	}
	out["database"] = sha256.Sum256(db)
	for k, v := range treeFiles(t, target.storage) {
		out["storage/"+k] = sha256.Sum256(v)
	}
	return out
}

// assertTargetUnchanged fails the test when target's state differs from before (targetState).
func assertTargetUnchanged(t *testing.T, target platformFixture, before map[string][32]byte) {
	t.Helper()
	after := targetState(t, target)
	if len(after) != len(before) {
		t.Fatalf("the target changed: %d entries, had %d", len(after), len(before))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("the target changed: %s", k)
		}
	}
}

// assertRefused fails the test unless err is a refusal with exit code code whose message says
// each of want.
func assertRefused(t *testing.T, err error, code int, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("the restore succeeded")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if got := outcome.Of(err).Code; got != code {
		t.Errorf("exit code %d, want %d (%v)", got, code, err)
	}
}

// firstFile is the first storage file (by name) of a backup folder.
func firstFile(t *testing.T, dir string) string {
	t.Helper()
	return backupFiles(t, dir)[0]
}

// backupFiles lists a backup folder's storage files (at least two), sorted by name.
func backupFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(filepath.Join(dir, layout.FilesDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if len(files) < 2 {
		t.Fatalf("backup %s has %d files", dir, len(files))
	}
	sort.Strings(files)
	return files
}

func editBytes(t *testing.T, p string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// An encrypted backup is refused, and nothing changes in the target, without an identity
// (exit 2, naming the backup), with the wrong key or passphrase, and when a file or fixture
// was tampered with, truncated or extended (naming it), SHA256SUMS re-signed or not, or holds
// another file's ciphertext (its plaintext sum differs), SHA256SUMS re-signed or not.
func TestRestoreEncryptedRefusedChangesNothing(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	other := enctest.NewKey(t)
	fixture := "db_books_chapter.json" + encryption.Ext
	payloadFlip := func(b []byte) []byte { b[len(b)-20] ^= 1; return b }
	tests := []struct {
		name       string
		passphrase string
		opts       func(b encryptedBackup, o *coordinator.RestoreOptions)
		damage     func(t *testing.T, b encryptedBackup)
		want       []string
		code       int
	}{
		{"no identity", "", func(b encryptedBackup, o *coordinator.RestoreOptions) { o.Identities = nil }, nil,
			[]string{encryption.ErrNoIdentity.Error()}, outcome.CodeUsage},
		{"wrong identity", "", func(b encryptedBackup, o *coordinator.RestoreOptions) { o.Identities = other.Identities }, nil,
			[]string{encryption.ErrWrongKey.Error()}, outcome.CodeUsage},
		{"wrong passphrase", "right one", func(b encryptedBackup, o *coordinator.RestoreOptions) {
			o.Identities, o.Passphrase = nil, "wrong one"
		}, nil, []string{encryption.ErrWrongKey.Error(), encryption.KeyFile}, outcome.CodeUsage},
		{"flipped byte", "", nil, func(t *testing.T, b encryptedBackup) {
			editBytes(t, filepath.Join(b.dir, firstFile(t, b.dir)), payloadFlip)
		}, []string{"corrupt", "SHA256SUMS"}, 1},
		{"flipped byte, re-signed", "", nil, func(t *testing.T, b encryptedBackup) {
			editBytes(t, filepath.Join(b.dir, firstFile(t, b.dir)), payloadFlip)
			resign(t, b.dir)
		}, []string{"damaged"}, 1},
		{"truncated, re-signed", "", nil, func(t *testing.T, b encryptedBackup) {
			editBytes(t, filepath.Join(b.dir, firstFile(t, b.dir)), func(b []byte) []byte { return b[:len(b)-10] })
			resign(t, b.dir)
		}, []string{"damaged"}, 1},
		{"extended, re-signed", "", nil, func(t *testing.T, b encryptedBackup) {
			editBytes(t, filepath.Join(b.dir, firstFile(t, b.dir)), func(b []byte) []byte { return append(b, 0) })
			resign(t, b.dir)
		}, []string{"damaged"}, 1},
		{"fixture flipped, re-signed", "", nil, func(t *testing.T, b encryptedBackup) {
			editBytes(t, filepath.Join(b.dir, fixture), payloadFlip)
			resign(t, b.dir)
		}, []string{fixture, "damaged"}, 1},
		{"another file's ciphertext", "", nil, func(t *testing.T, b encryptedBackup) {
			first := firstFile(t, b.dir)
			other, err := os.ReadFile(filepath.Join(b.dir, fixture))
			if err != nil {
				t.Fatal(err)
			}
			editBytes(t, filepath.Join(b.dir, first), func([]byte) []byte { return other })
			resign(t, b.dir)
		}, []string{"plaintext's SHA-256"}, 1},
		{"another file's ciphertext, not re-signed", "", nil, func(t *testing.T, b encryptedBackup) {
			other, err := os.ReadFile(filepath.Join(b.dir, fixture))
			if err != nil {
				t.Fatal(err)
			}
			editBytes(t, filepath.Join(b.dir, firstFile(t, b.dir)), func([]byte) []byte { return other })
		}, []string{"plaintext's SHA-256"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encryptedBackupOf(t, src, tt.passphrase)
			o := coordinator.RestoreOptions{Source: b.dir, Identities: b.key.Identities}
			if tt.opts != nil {
				tt.opts(b, &o)
			}
			if tt.damage != nil {
				tt.damage(t, b)
			}
			want := tt.want
			if tt.damage != nil && !strings.Contains(strings.Join(want, " "), fixture) {
				want = append(want, firstFile(t, b.dir))
			}
			if tt.opts != nil {
				want = append(want, b.dir) // the backup is named
			}
			target := emptyTarget(t, database.SQLite)
			os.MkdirAll(target.storage, 0o755)
			os.WriteFile(filepath.Join(target.storage, "kept.txt"), []byte("kept"), 0o644)
			before := targetState(t, target)
			_, err := restoreWithKeys(t, target, o, b.key.Identities)
			assertRefused(t, err, tt.code, want...)
			assertTargetUnchanged(t, target, before)
		})
	}
}
