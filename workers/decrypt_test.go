package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/messages"
)

// restoreTaskOfEncrypted writes an encrypted backup folder holding one file and a restore
// task of it into a fresh platform storage.
func restoreTaskOfEncrypted(t *testing.T, k enctest.Key, content string, damage func([]byte) []byte) (*messages.Task, string) {
	t.Helper()
	backup, platform, lists := t.TempDir(), t.TempDir(), t.TempDir()
	sealed := encryptString(t, k, content)
	if damage != nil {
		sealed = damage(sealed)
	}
	p := filepath.Join(backup, "files", "content", "a.txt"+encryption.Ext)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	var b strings.Builder
	lw := messages.NewFileListWriter(&b)
	lw.Add(messages.FileEntry{Key: "content/a.txt", Stored: "files/content/a.txt.age", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))})
	lw.Flush()
	os.WriteFile(filepath.Join(lists, "keys.jsonl"), []byte(b.String()), 0o600)
	return &messages.Task{
		Version: messages.Version, Run: "run1", ID: "restore-content-0000", Kind: messages.KindRestorePrefix, Dest: platform,
		Copy: &messages.CopyTask{Source: backup, SourcePrefix: "files/", Prefix: "content/", ListStore: lists, KeyList: "keys.jsonl", Keys: 1, Decrypt: true},
	}, platform
}

func encryptString(t *testing.T, k enctest.Key, s string) []byte {
	t.Helper()
	var b strings.Builder
	w, err := k.Recipients.Encrypt(&b)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(s))
	w.Close()
	return []byte(b.String())
}

// A restore task of an encrypted backup is decrypted by a worker with the key, written
// without .age; a worker without an identity hands it back (a mismatch naming --identity);
// a wrong key or damaged ciphertext fails that file, naming it, and writes nothing.
func TestRestoreTaskDecrypts(t *testing.T) {
	k, other := enctest.NewKey(t), enctest.NewKey(t)
	const content = "chapter one: it was a dark and stormy night"
	tests := []struct {
		name    string
		ids     *encryption.Identities
		damage  func([]byte) []byte
		wantErr string // of the task; "" for a task that runs
		failure string // of the file; "" for a restored file
	}{
		{"key", k.Identities, nil, "", ""},
		{"no identity", nil, nil, "--identity", ""},
		{"wrong key", other.Identities, nil, "", "none of the given age identities"},
		{"flipped byte", k.Identities, func(b []byte) []byte { b[len(b)-5] ^= 1; return b }, "", "damaged"},
		{"truncated", k.Identities, func(b []byte) []byte { return b[:len(b)-10] }, "", "damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, platform := restoreTaskOfEncrypted(t, k, content, tt.damage)
			w := &Worker{cfg: Config{StorageURL: platform, Identities: tt.ids}}
			res, err := w.copy(context.Background(), task)
			if tt.wantErr != "" {
				if err == nil || !IsMismatch(err) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want a mismatch naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, rerr := os.ReadFile(filepath.Join(platform, "content", "a.txt"))
			if tt.failure != "" {
				if res.Failed != 1 || len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "content/a.txt") || !strings.Contains(res.Failures[0], tt.failure) {
					t.Fatalf("result %+v, want the file failed with %q", res, tt.failure)
				}
				if rerr == nil {
					t.Fatalf("a file that failed to decrypt was written: %q", got)
				}
				return
			}
			if res.Files != 1 || res.Failed != 0 || string(got) != content {
				t.Fatalf("result %+v, file %q (%v)", res, got, rerr)
			}
			if _, err := os.Stat(filepath.Join(platform, "content", "a.txt.age")); !os.IsNotExist(err) {
				t.Fatalf("the .age name was restored: %v", err)
			}
		})
	}
}
