package coordinator

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/internal/encryption"
)

// A run's record keeps an encrypted run's public keys, or only that it used a passphrase:
// the passphrase itself is never recorded, and a resume without it again is refused naming
// where to give it; with it, or with recorded recipients, the resume is encrypted the same.
func TestResumeEncryption(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	const pass = "never-in-a-record-4242"
	tests := []struct {
		name    string
		run     BackupOptions
		resume  BackupOptions // what the resuming command was given
		wantErr string
		check   func(t *testing.T, o BackupOptions)
	}{
		{"recipients", BackupOptions{Recipients: rc}, BackupOptions{}, "", func(t *testing.T, o BackupOptions) {
			if o.Recipients == nil || !o.Recipients.Same([]string{id.Recipient().String()}) || o.Passphrase != "" {
				t.Errorf("resumed recipients %v, passphrase set %v", o.Recipients, o.Passphrase != "")
			}
		}},
		{"passphrase given again", BackupOptions{Passphrase: pass}, BackupOptions{Passphrase: pass}, "", func(t *testing.T, o BackupOptions) {
			if o.Passphrase != pass || o.Recipients != nil {
				t.Errorf("resumed passphrase %q, recipients %v", o.Passphrase, o.Recipients)
			}
		}},
		{"passphrase missing", BackupOptions{Passphrase: pass}, BackupOptions{}, "WNB_AGE_PASSPHRASE", nil},
		{"unencrypted", BackupOptions{}, BackupOptions{Passphrase: "stray", Recipients: rc}, "", func(t *testing.T, o BackupOptions) {
			if o.encrypting() {
				t.Error("a resume of an unencrypted run encrypts")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := recordedOptions(tc.run)
			if strings.Contains(string(raw), pass) {
				t.Fatalf("the record holds the passphrase: %s", raw)
			}
			var rec resumable
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			o := tc.resume
			err := resumeEncryption(&o, rec)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--passphrase-file") {
					t.Fatalf("error %v, want one naming %s and --passphrase-file", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			default:
				tc.check(t, o)
			}
		})
	}
}

// An encrypted backup's SQLite snapshot (a plaintext copy of the database) is never put in
// the staging folder, which sits beside the backups: an unencrypted one's is.
func TestSnapshotDirOutsideEncryptedStaging(t *testing.T) {
	d, err := openDestination(context.Background(), t.TempDir(), "run-snap")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, encrypted := range []bool{false, true} {
		dir, err := snapshotDir(d, encrypted)
		if err != nil {
			t.Fatal(err)
		}
		inside := strings.HasPrefix(dir, d.Location()+string(os.PathSeparator))
		if inside == encrypted {
			t.Errorf("encrypted=%v: snapshot folder %s, inside the staging folder %v", encrypted, dir, inside)
		}
		if encrypted {
			os.RemoveAll(dir)
		}
	}
}
