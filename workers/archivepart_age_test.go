package workers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
)

// A copy task of an encrypted archive (Recipients set) writes its part as one age file to
// those recipients: the staged bytes hold no file's content, the run key reads back a normal
// part, and the sums are of the plaintext the archive holds.
func TestCopyTaskWritesEncryptedArchivePart(t *testing.T) {
	for _, c := range []archive.Compression{archive.Gzip, archive.Zstd, archive.None} {
		t.Run(string(c), func(t *testing.T) {
			srv := s3test.Start(t, nil, "media")
			keys := []string{"content/b.json", "content/a.json"}
			task := s3CopyTask(t, srv, "copy-content-0000", keys)
			key, err := encryption.NewRunKey()
			if err != nil {
				t.Fatal(err)
			}
			task.Copy.Recipients = []string{key.Recipient()}
			task.Copy.Archive = &messages.ArchivePart{Output: ".wnb/parts/copy-content-0000" + c.Ext(), Top: "backup_20240101_000000", Compression: string(c)}
			w := &Worker{cfg: Config{StorageURL: srv.URL("media", "platform", ""), Concurrency: 2}}
			if _, err := w.copy(context.Background(), task); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(task.Dest, task.Copy.Archive.Output)
			stored, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !encryption.IsEncrypted(stored) || bytes.Contains(stored, []byte("data of content/a.json")) {
				t.Fatalf("the staged part is not an age file, or holds a file's plaintext: %.40q", stored)
			}
			plain, err := key.Identities().Decrypt(bytes.NewReader(stored))
			if err != nil {
				t.Fatal(err)
			}
			dec := filepath.Join(t.TempDir(), "part"+c.Ext())
			data, err := io.ReadAll(plain)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dec, data, 0o600); err != nil {
				t.Fatal(err)
			}
			names, content := readPart(t, dec)
			if len(names) != 2 || content["backup_20240101_000000/files/content/a.json"] != "data of content/a.json" {
				t.Fatalf("decrypted part: %v %q", names, content)
			}
			sums, _ := os.ReadFile(filepath.Join(task.Dest, "sums.jsonl"))
			messages.ReadFileList(strings.NewReader(string(sums)), func(e messages.FileEntry) error {
				s := sha256.Sum256([]byte(content["backup_20240101_000000/"+e.Path]))
				if e.SHA256 != hex.EncodeToString(s[:]) {
					t.Errorf("sums entry %+v is not the plaintext's sum", e)
				}
				return nil
			})
		})
	}
}
