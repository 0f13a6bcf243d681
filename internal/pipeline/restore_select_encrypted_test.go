package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// checkPrivateWork is a Confirm that, once every check has passed, finds the decrypted
// fixtures in one private work folder (0700) of tmp, files 0600.
func checkPrivateWork(t *testing.T, tmp string, seen *bool) func(*coordinator.RestorePlan) (bool, error) {
	return func(*coordinator.RestorePlan) (bool, error) {
		*seen = true
		works, _ := filepath.Glob(filepath.Join(tmp, "wnb-restore-lists-*"))
		if len(works) != 1 {
			return false, fmt.Errorf("%d restore work folders in %s, want 1", len(works), tmp)
		}
		fi, err := os.Stat(works[0])
		if err != nil || fi.Mode().Perm() != 0o700 {
			return false, fmt.Errorf("work folder %s: %v, mode %v, want 0700", works[0], err, fi.Mode())
		}
		fixtures, _ := filepath.Glob(filepath.Join(works[0], "fixtures", "db_*.json"))
		if len(fixtures) == 0 {
			return false, fmt.Errorf("no decrypted fixture in the work folder %s", works[0])
		}
		for _, f := range fixtures {
			if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
				return false, fmt.Errorf("decrypted fixture %s: %v, mode %v, want 0600", f, err, fi.Mode())
			}
		}
		return true, nil
	}
}

// --book restores exactly the deleted book's rows and files from an encrypted backup: a
// folder, an S3 prefix and an S3 object store, on SQLite and PostgreSQL, with an identity or
// a passphrase. The decrypted fixtures are only in the run's private work folder, removed at
// the end, and nothing but the book's files reaches the storage.
func TestRestoreBookFromEncryptedBackup(t *testing.T) {
	for _, tt := range encryptedPlacements {
		t.Run(tt.name, func(t *testing.T) {
			p := filledPlatform(t, tt.engine, demo.DefaultOptions())
			b := encryptedBackupOf(t, p, tt.passphrase)
			loc := placeEncryptedBackup(t, b, tt.where)
			execSQL(t, p.dbURL, "UPDATE books_book SET title = 'edited after the backup' WHERE id = 1")
			before, files := dumpAll(t, p.dbURL), treeFiles(t, p.storage)
			slug := queryText(t, p.dbURL, "SELECT slug FROM books_book WHERE id = 2")[0]
			named := queryText(t, p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 2")
			deleteBookCascade(t, p.dbURL, 2)
			for _, key := range named {
				removeStorageFile(t, p.storage, key)
			}

			tmp := t.TempDir()
			confirmed := false
			o := coordinator.RestoreOptions{Source: loc, Identities: b.key.Identities, Select: &coordinator.SelectOptions{Books: []string{slug}},
				Confirm: checkPrivateWork(t, tmp, &confirmed)}
			workerIDs := restoreKeys(t, &o, loc, tt.passphrase, b.key.Identities)
			rep, err := restoreWithKeysIn(t, p, o, workerIDs, tmp)
			if err != nil {
				t.Fatal(err)
			}
			if !confirmed {
				t.Fatal("the restore did not ask for confirmation")
			}
			if keys := rep.Plan.Subset.FileKeys; rep.Files != int64(keys) || keys < len(named) || rep.Failed != 0 {
				t.Fatalf("%d files restored (%d failed), want the %d its rows name (%d deleted chapters' among them)", rep.Files, rep.Failed, keys, len(named))
			}
			assertSameRows(t, before, dumpAll(t, p.dbURL))
			got := treeFiles(t, p.storage)
			assertSameTree(t, got, files)
			if len(got) != len(files) {
				t.Fatalf("the storage holds %d files, want %d", len(got), len(files))
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("the restore left %d entries in its temporary folder, e.g. %s", len(left), left[0].Name())
			}
		})
	}
}

// A selective restore of an encrypted backup is refused, and nothing changes in the target,
// without an identity (exit 2, naming the backup), with the wrong key or passphrase, and when a
// fixture or a file the selected rows name was tampered with (naming it), SHA256SUMS re-signed
// or not, or holds another file's ciphertext.
func TestRestoreSelectEncryptedRefused(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	other := enctest.NewKey(t)
	fixture := "db_books_chapter.json" + encryption.Ext
	chapterFile := "files/" + queryText(t, src.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 2 ORDER BY id")[0] + encryption.Ext
	flip := func(b []byte) []byte { b[len(b)-20] ^= 1; return b }
	tests := []struct {
		name       string
		passphrase string
		opts       func(o *coordinator.RestoreOptions)
		damage     func(t *testing.T, dir string)
		want       []string
		code       int
	}{
		{"no identity", "", func(o *coordinator.RestoreOptions) { o.Identities = nil }, nil,
			[]string{encryption.ErrNoIdentity.Error()}, outcome.CodeUsage},
		{"wrong identity", "", func(o *coordinator.RestoreOptions) { o.Identities = other.Identities }, nil,
			[]string{encryption.ErrWrongKey.Error()}, outcome.CodeUsage},
		{"wrong passphrase", "right one", func(o *coordinator.RestoreOptions) { o.Identities, o.Passphrase = nil, "wrong one" }, nil,
			[]string{encryption.ErrWrongKey.Error(), encryption.KeyFile}, outcome.CodeUsage},
		{"fixture flipped", "", nil, func(t *testing.T, dir string) {
			editBytes(t, filepath.Join(dir, fixture), flip)
		}, []string{fixture, "corrupt", "SHA256SUMS"}, 1},
		{"fixture flipped, re-signed", "", nil, func(t *testing.T, dir string) {
			editBytes(t, filepath.Join(dir, fixture), flip)
			resign(t, dir)
		}, []string{fixture, "damaged"}, 1},
		{"selected file flipped", "", nil, func(t *testing.T, dir string) {
			editBytes(t, filepath.Join(dir, chapterFile), flip)
		}, []string{chapterFile, "corrupt", "SHA256SUMS"}, 1},
		{"selected file truncated, re-signed", "", nil, func(t *testing.T, dir string) {
			editBytes(t, filepath.Join(dir, chapterFile), func(b []byte) []byte { return b[:len(b)-10] })
			resign(t, dir)
		}, []string{chapterFile, "damaged"}, 1},
		{"selected file holds another's ciphertext, re-signed", "", nil, func(t *testing.T, dir string) {
			other, err := os.ReadFile(filepath.Join(dir, fixture))
			if err != nil {
				t.Fatal(err)
			}
			editBytes(t, filepath.Join(dir, chapterFile), func([]byte) []byte { return other })
			resign(t, dir)
		}, []string{chapterFile, "plaintext's SHA-256"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := copyPlatform(t, src)
			b := encryptedBackupOf(t, p, tt.passphrase)
			deleteBookCascade(t, p.dbURL, 2)
			o := coordinator.RestoreOptions{Source: b.dir, Identities: b.key.Identities, Select: &coordinator.SelectOptions{Books: []string{"2"}}}
			if tt.opts != nil {
				tt.opts(&o)
			}
			want := tt.want
			if tt.damage != nil {
				tt.damage(t, b.dir)
			} else {
				want = append(want, b.dir) // the backup is named
			}
			before := targetState(t, p)
			tmp := t.TempDir()
			_, err := restoreWithKeysIn(t, p, o, b.key.Identities, tmp)
			assertRefused(t, err, tt.code, want...)
			assertTargetUnchanged(t, p, before)
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("the refused restore left %d entries in its temporary folder, e.g. %s", len(left), left[0].Name())
			}
		})
	}
}

// copyPlatform is a copy of a SQLite platform (database file and storage), so that each case
// starts from the same rows without filling the demo again.
func copyPlatform(t *testing.T, p platformFixture) platformFixture {
	t.Helper()
	db := strings.TrimPrefix(p.dbURL, "sqlite:///")
	dir := t.TempDir()
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db.sqlite3"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	storage := copyTree(t, p.storage)
	return platformFixture{dbURL: "sqlite:///" + filepath.Join(dir, "db.sqlite3"), storage: storage, summary: p.summary}
}

// A selective restore from an encrypted object-store backup reads, decrypts and checks the
// objects of the selected rows' files before anything changes: a tampered one is refused,
// naming the file, and the target is unchanged.
func TestRestoreSelectEncryptedObjectTampered(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	b := encryptedBackupOf(t, p, "")
	s3 := s3test.Start(t, nil, "backups")
	name := enctest.ObjectStore(t, b.dir, s3.URL("backups", "nightly", ""), b.sizes)
	chapterFile := "files/" + queryText(t, p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 2 ORDER BY id")[0] + encryption.Ext
	data, err := os.ReadFile(filepath.Join(b.dir, filepath.FromSlash(chapterFile)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	data[len(data)-20] ^= 1
	s3.Put(t, "backups", "nightly/"+layout.ObjectKey(hex.EncodeToString(sum[:])), data)
	deleteBookCascade(t, p.dbURL, 2)
	before := targetState(t, p)
	o := coordinator.RestoreOptions{Source: s3.URL("backups", "nightly/"+name, ""), Identities: b.key.Identities,
		Select: &coordinator.SelectOptions{Books: []string{"2"}}}
	_, err = restoreWithKeysIn(t, p, o, b.key.Identities, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), chapterFile) || !strings.Contains(err.Error(), "damaged") || outcome.Of(err).Code != 1 {
		t.Fatalf("exit %d, %v; want exit 1 naming %s as damaged", outcome.Of(err).Code, err, chapterFile)
	}
	assertTargetUnchanged(t, p, before)
}

// An encrypted archive (one age file) restores a book with the key, like a plain archive: it is
// decrypted and unpacked into the run's private temporary folder, removed at the end. Without
// the key it is refused, with nothing changed.
func TestRestoreBookFromEncryptedArchive(t *testing.T) {
	p := sqlitePlatform(t, demo.DefaultOptions())
	key := newSealKey(t)
	s := startSession(t, p, 2, queue.Config{})
	brep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Compress: true, Recipients: key.recipients,
	})
	if err != nil {
		t.Fatal(err)
	}
	before, files := dumpAll(t, p.dbURL), treeFiles(t, p.storage)
	for _, k := range queryText(t, p.dbURL, "SELECT content_file FROM books_chapter WHERE book_id = 2") {
		removeStorageFile(t, p.storage, k)
	}
	deleteBookCascade(t, p.dbURL, 2)
	deleted := targetState(t, p)
	sel := &coordinator.SelectOptions{Books: []string{"2"}}

	_, err = restoreWithKeysIn(t, p, coordinator.RestoreOptions{Source: brep.Path, Select: sel}, nil, t.TempDir())
	if outcome.Of(err).Code != outcome.CodeUsage || !strings.Contains(fmt.Sprint(err), encryption.ErrNoIdentity.Error()) {
		t.Fatalf("without a key: exit %d, %v", outcome.Of(err).Code, err)
	}
	if after := targetState(t, p); len(after) != len(deleted) || after["database"] != deleted["database"] {
		t.Fatal("the refused restore changed the target")
	}

	tmp := t.TempDir()
	if _, err := restoreWithKeysIn(t, p, coordinator.RestoreOptions{Source: brep.Path, Select: sel, Identities: key.identities}, key.identities, tmp); err != nil {
		t.Fatal(err)
	}
	assertSameRows(t, before, dumpAll(t, p.dbURL))
	assertSameTree(t, treeFiles(t, p.storage), files)
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("the restore left %d entries in its temporary folder, e.g. %s", len(left), left[0].Name())
	}
}
