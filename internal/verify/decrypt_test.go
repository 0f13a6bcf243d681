package verify

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// encryptedCopy is a copy of the shared backup, encrypted to a new key.
func encryptedCopy(t *testing.T, passphrase string) (string, enctest.Key, map[string]int64) {
	t.Helper()
	dir := backupCopy(t)
	k := enctest.NewKey(t)
	return dir, k, enctest.Encrypt(t, dir, k, passphrase)
}

// verifyEncryptedAt verifies an encrypted backup kept as a folder, or as an object-store
// backup in a folder or on S3.
func verifyEncryptedAt(t *testing.T, where, dir string, sizes map[string]int64, o Options) (*Report, error) {
	t.Helper()
	o.Workers = 2
	switch where {
	case "objects in a folder":
		root := t.TempDir()
		name := enctest.ObjectStore(t, dir, root, sizes)
		return Verify(context.Background(), filepath.Join(root, name), o)
	case "objects on s3":
		s3 := s3test.Start(t, nil, "backups")
		name := enctest.ObjectStore(t, dir, s3.URL("backups", "nightly", ""), sizes)
		b, err := coordinator.OpenBackup(context.Background(), s3.URL("backups", "nightly/"+name, ""), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		o.Objects = b.Root
		return VerifyDir(context.Background(), b.Dir, o)
	}
	return Verify(context.Background(), dir, o)
}

func checkOf(rep *Report, name string) (Check, bool) {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// An encrypted backup, as a folder or an object-store backup (folder, S3), verifies without
// a key on its stored bytes (fixtures and rows said not checked, with a warning), and with
// --decrypt and its key (or passphrase) end to end: every file decrypted against the
// plaintext manifest, every fixture parsed and counted, the plaintext bytes compared.
func TestVerifyEncrypted(t *testing.T) {
	for _, where := range []string{"folder", "objects in a folder", "objects on s3"} {
		t.Run(where, func(t *testing.T) {
			dir, k, sizes := encryptedCopy(t, "")
			rep, err := verifyEncryptedAt(t, where, dir, sizes, Options{})
			if err != nil || !rep.OK {
				t.Fatalf("stored bytes: %v %+v %q", err, rep.Checks, rep.Problems)
			}
			if c, _ := checkOf(rep, CheckFixtures); !strings.Contains(c.Detail, "not checked") || len(rep.Models) != 0 {
				t.Fatalf("fixtures of an encrypted backup read without a key: %+v", c)
			}
			if !strings.Contains(strings.Join(rep.Warnings, "\n"), "--decrypt") {
				t.Fatalf("no warning that the plaintext was not checked: %q", rep.Warnings)
			}
			rep, err = verifyEncryptedAt(t, where, dir, sizes, Options{Decrypt: true, Identities: k.Identities})
			if err != nil || !rep.OK {
				t.Fatalf("--decrypt: %v %+v %q", err, rep.Checks, rep.Problems)
			}
			c, ok := checkOf(rep, CheckPlaintext)
			if !ok || !c.OK || len(rep.Models) != 10 || rep.Models[0].Rows == 0 || rep.Files == 0 {
				t.Fatalf("--decrypt checked %+v, models %+v", rep.Checks, rep.Models)
			}
		})
	}
	t.Run("passphrase", func(t *testing.T) {
		dir, _, _ := encryptedCopy(t, "the passphrase")
		rep, err := Verify(context.Background(), dir, Options{Workers: 2, Decrypt: true, Passphrase: "the passphrase"})
		if err != nil || !rep.OK || len(rep.Models) != 10 {
			t.Fatalf("--decrypt with the passphrase: %v %+v %q", err, rep, rep.Problems)
		}
	})
}

// verify --decrypt without a key is a usage error, with the wrong key an error saying so;
// a file whose ciphertext was changed or truncated (SHA256SUMS re-signed, so only the
// decryption can tell), another file's ciphertext in its place, and a file the plaintext
// manifest does not list are each a problem naming the file.
func TestVerifyDecryptFindsWhatStoredBytesCannot(t *testing.T) {
	encDir, k, _ := encryptedCopy(t, "")
	if _, err := Verify(context.Background(), encDir, Options{Decrypt: true}); outcome.Of(err).Code != outcome.CodeUsage || !strings.Contains(err.Error(), encryption.ErrNoIdentity.Error()) {
		t.Fatalf("--decrypt without a key: %v", err)
	}
	other := enctest.NewKey(t)
	if _, err := Verify(context.Background(), encDir, Options{Decrypt: true, Identities: other.Identities}); !errors.Is(err, encryption.ErrWrongKey) {
		t.Fatalf("--decrypt with the wrong key: %v", err)
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, dir, victim string)
		want   string
	}{
		{"flipped byte", func(t *testing.T, dir, victim string) {
			editFile(t, dir, victim, func(b []byte) []byte { b[len(b)-20] ^= 1; return b })
		}, "cannot be decrypted"},
		{"truncated", func(t *testing.T, dir, victim string) {
			editFile(t, dir, victim, func(b []byte) []byte { return b[:len(b)-10] })
		}, "cannot be decrypted"},
		{"another file's ciphertext", func(t *testing.T, dir, victim string) {
			data, err := os.ReadFile(filepath.Join(dir, "db_books_book.json"+encryption.Ext))
			if err != nil {
				t.Fatal(err)
			}
			editFile(t, dir, victim, func([]byte) []byte { return data })
		}, "plaintext checksum mismatch"},
		{"not in the manifest", func(t *testing.T, dir, victim string) {
			enctest.Segment(t, dir, k, func(s string) string {
				var kept []string
				for _, l := range strings.SplitAfter(s, "\n") {
					if !strings.HasSuffix(l, "  "+strings.TrimSuffix(victim, encryption.Ext)+"\n") {
						kept = append(kept, l)
					}
				}
				return strings.Join(kept, "")
			})
		}, "not in the backup's manifest of plaintext sums"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			copyTree(t, encDir, dir)
			victim := firstStorageFile(t, dir)
			tt.damage(t, dir, victim)
			enctest.Resign(t, dir)
			if rep, err := Verify(context.Background(), dir, Options{Workers: 2}); err != nil || !rep.OK {
				t.Fatalf("the stored bytes, re-signed, no longer verify: %v %q", err, rep.Problems)
			}
			rep, err := Verify(context.Background(), dir, Options{Workers: 2, Decrypt: true, Identities: k.Identities})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || !strings.Contains(strings.Join(rep.Problems, "\n"), victim) || !strings.Contains(strings.Join(rep.Problems, "\n"), tt.want) {
				t.Fatalf("problems %q, want one naming %s: %s", rep.Problems, victim, tt.want)
			}
		})
	}
}
