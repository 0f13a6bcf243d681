package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// encryptedSiteBackup backs the site in dir up and encrypts the backup (with passphrase set, a
// passphrase backup), returning it and its key.
func encryptedSiteBackup(t *testing.T, dir, passphrase string) (string, enctest.Key) {
	t.Helper()
	if code, out := cli(t, dir, "backup_data"); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	backup := onlyBackup(t, filepath.Join(dir, "backups"))
	k := enctest.NewKey(t)
	enctest.Encrypt(t, backup, k, passphrase)
	return backup, k
}

// restore of an encrypted backup: without a key it is a usage error (exit 2) saying which
// flags give one, and nothing changes; --identity or WNB_AGE_IDENTITY_FILE restores it; a
// passphrase backup opens with WNB_AGE_PASSPHRASE or --passphrase-file, and a wrong
// passphrase is refused (exit 2) with nothing changed.
func TestRestoreEncryptedCommand(t *testing.T) {
	dir := sitePlatform(t)
	backup, k := encryptedSiteBackup(t, dir, "")
	want := rowCount(t, "sqlite:///"+filepath.Join(dir, "db.sqlite3"), "books.chapter")
	t.Setenv(envIdentityFile, "")
	t.Setenv(envPassphrase, "")

	dbURL, media := emptyTarget(t)
	code, out := cli(t, dir, "restore", backup, "--force")
	if code != 2 || !strings.Contains(out, encryption.ErrNoIdentity.Error()) || !strings.Contains(out, backup) {
		t.Fatalf("restore without a key: exit %d\n%s", code, out)
	}
	if rowCount(t, dbURL, "books.chapter") != 0 {
		t.Fatal("a refused restore changed the database")
	}
	if _, err := os.Stat(media); err == nil {
		t.Fatal("a refused restore created the storage")
	}
	if code, out := cli(t, dir, "restore", backup, "--force", "--identity", filepath.Join(dir, "missing.txt")); code != 2 || !strings.Contains(out, "--identity") {
		t.Fatalf("restore with a missing identity file: exit %d\n%s", code, out)
	}
	if code, out := cli(t, dir, "restore", backup, "--force", "--identity", k.File); code != 0 || rowCount(t, dbURL, "books.chapter") != want {
		t.Fatalf("restore --identity: exit %d\n%s", code, out)
	}
	t.Setenv(envIdentityFile, k.File)
	if code, out := cli(t, dir, "restore", backup, "--force"); code != 0 {
		t.Fatalf("restore with %s: exit %d\n%s", envIdentityFile, code, out)
	}
	t.Setenv(envIdentityFile, "")

	pdir := sitePlatform(t)
	pbackup, _ := encryptedSiteBackup(t, pdir, "a long passphrase")
	dbURL, _ = emptyTarget(t)
	wrong := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(wrong, []byte("not it\n"), 0o600)
	code, out = cli(t, pdir, "restore", pbackup, "--force", "--passphrase-file", wrong)
	if code != 2 || !strings.Contains(out, encryption.ErrWrongKey.Error()) || rowCount(t, dbURL, "books.chapter") != 0 {
		t.Fatalf("restore with a wrong passphrase: exit %d\n%s", code, out)
	}
	t.Setenv(envPassphrase, "a long passphrase")
	if code, out := cli(t, pdir, "restore", pbackup, "--force"); code != 0 || rowCount(t, dbURL, "books.chapter") != want {
		t.Fatalf("restore with %s: exit %d\n%s", envPassphrase, code, out)
	}
}

// verify of an encrypted backup, local or an S3 prefix: without a key its stored bytes pass
// (the fixtures said not checked); --decrypt without a key is a usage error (exit 2);
// --decrypt --identity checks the plaintext; --decrypt with the passphrase in
// WNB_AGE_PASSPHRASE opens a passphrase backup.
func TestVerifyEncryptedCommand(t *testing.T) {
	dir := sitePlatform(t)
	backup, k := encryptedSiteBackup(t, dir, "")
	t.Setenv(envIdentityFile, "")
	t.Setenv(envPassphrase, "")
	s3 := s3test.Start(t, nil, "backups")
	s3test.UploadTree(t, filepath.Dir(backup), s3.URL("backups", "nightly", ""))
	for _, src := range []string{backup, s3.URL("backups", "nightly/"+filepath.Base(backup), "")} {
		code, out, errOut := runSplit(t, "verify", src)
		if code != 0 || !strings.Contains(out, "not checked: the backup is encrypted") {
			t.Fatalf("verify %s: exit %d\n%s%s", src, code, out, errOut)
		}
		code, out, errOut = runSplit(t, "verify", src, "--decrypt")
		if code != 2 || !strings.Contains(out+errOut, encryption.ErrNoIdentity.Error()) {
			t.Fatalf("verify --decrypt without a key %s: exit %d\n%s%s", src, code, out, errOut)
		}
		code, out, errOut = runSplit(t, "verify", src, "--decrypt", "--identity", k.File)
		if code != 0 || !strings.Contains(out, "OK  plaintext") || !strings.Contains(out, "Backup OK: 10 models") {
			t.Fatalf("verify --decrypt --identity %s: exit %d\n%s%s", src, code, out, errOut)
		}
	}
	pdir := sitePlatform(t)
	pbackup, _ := encryptedSiteBackup(t, pdir, "secret words")
	t.Setenv(envPassphrase, "secret words")
	if code, out, errOut := runSplit(t, "verify", pbackup, "--decrypt"); code != 0 || !strings.Contains(out, "OK  plaintext") {
		t.Fatalf("verify --decrypt with %s: exit %d\n%s%s", envPassphrase, code, out, errOut)
	}
}

// test-backup-restore takes --identity: the round trip passes.
func TestTestBackupRestoreWithIdentity(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DATABASE_URL", "")
	t.Setenv("STORAGE_URL", "")
	k := enctest.NewKey(t)
	if code, out := cli(t, dir, "test-backup-restore", "--identity", k.File); code != 0 || !strings.Contains(out, "PASS") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}
