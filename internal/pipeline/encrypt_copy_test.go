package pipeline_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// `copy` of an encrypted backup needs no key: into another folder and into an S3 object
// store, the copy holds the same encryption metadata, lists the same stored sums, and its
// files still decrypt with the key to the originals.
func TestCopyEncryptedBackup(t *testing.T) {
	st := newIncStorage(t)
	for _, k := range []string{"media/one.txt", "media/two.txt"} {
		st.put(k, "copied secret of "+k)
	}
	c := filesSession(t, st)
	src := t.TempDir()
	key := newAgeKey(t)
	rep := filesBackup(t, c, st, src, func(o *coordinator.BackupOptions) { o.Recipients = key.recipients(t) })
	name := backupName(rep)
	for _, s3 := range []bool{false, true} {
		dest := t.TempDir()
		if s3 {
			dest = s3test.Start(t, nil, "backups").URL("backups", "copy", "")
		}
		if _, err := c.Copy(context.Background(), coordinator.CopyOptions{Backup: filepath.Join(src, name), Dest: dest}); err != nil {
			t.Fatalf("copy to s3=%v: %v", s3, err)
		}
		meta, err := layout.ParseMetadata(readKey(t, dest, name+"/"+layout.FileMetadata))
		if err != nil {
			t.Fatal(err)
		}
		if meta.Encryption == nil || meta.Encryption.Recipients[0] != key.id.Recipient().String() {
			t.Fatalf("copied metadata encryption: %+v", meta.Encryption)
		}
		sums := plainSums(t, key, readKey(t, dest, name+"/"+meta.Encryption.PlainSums[0]))
		if len(sums) != 2 {
			t.Fatalf("copied plain sums: %v", sums)
		}
		stored := backupBytes(t, dest, name)
		checkNoSecret(t, stored, map[string][]byte{"content": []byte("copied secret")})
		found := 0
		for k, data := range stored {
			stored := filepath.Ext(k) == ".age" || strings.HasPrefix(k, layout.ObjectsDir+"/")
			if stored && !containsDir(k, "plainsums") && k != name+"/backup_key.age" {
				if got := string(key.open(t, k, data)); got == "copied secret of media/one.txt" || got == "copied secret of media/two.txt" {
					found++
				}
			}
		}
		if found != 2 {
			t.Errorf("copy to s3=%v: %d files decrypt to the originals, want 2", s3, found)
		}
	}
}

func containsDir(key, dir string) bool {
	return filepath.Base(filepath.Dir(key)) == dir
}
