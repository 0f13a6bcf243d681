package pipeline_test

import (
	"context"
	"os"
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

// A nightly copy of an encrypted backup is incremental like any other: into a folder it
// hard-links the earlier copy's files (the base's index records sizes before encryption,
// which the copies on disk are not), into an object store it skips the objects there; and
// its counts are in the metadata's unit, bytes before encryption: new plus reused is the
// backup's bytes, the new ones the changed file's.
func TestCopyEncryptedIncremental(t *testing.T) {
	for _, toS3 := range []bool{false, true} {
		t.Run(map[bool]string{false: "folder", true: "s3"}[toS3], func(t *testing.T) {
			st := newIncStorage(t)
			for _, k := range []string{"media/a.txt", "media/b.txt", "media/c.txt", "media/d.txt"} {
				st.put(k, "nightly secret of "+k)
			}
			c := filesSession(t, st)
			src, dest, key := t.TempDir(), t.TempDir(), newAgeKey(t)
			if toS3 {
				dest = s3test.Start(t, nil, "backups").URL("backups", "copy", "")
			}
			backupAndCopy := func() (*coordinator.BackupReport, *coordinator.CopyReport) {
				rep := filesBackup(t, c, st, src, func(o *coordinator.BackupOptions) { o.Recipients = key.recipients(t) })
				cp, err := c.Copy(context.Background(), coordinator.CopyOptions{Backup: filepath.Join(src, backupName(rep)), Dest: dest})
				if err != nil {
					t.Fatal(err)
				}
				return rep, cp
			}
			first, _ := backupAndCopy()
			const changed = "changed since the first night"
			st.put("media/b.txt", changed)
			second, cp := backupAndCopy()
			if cp.Copied != 1 || cp.Reused != 3 || cp.Bytes != int64(len(changed)) {
				t.Fatalf("second copy: copied %d (%d bytes), reused %d (%d bytes); want 1 (%d bytes), 3",
					cp.Copied, cp.Bytes, cp.Reused, cp.ReusedBytes, len(changed))
			}
			meta, err := layout.ParseMetadata(readKey(t, dest, backupName(second)+"/"+layout.FileMetadata))
			if err != nil {
				t.Fatal(err)
			}
			if f := meta.Files; f.New.Bytes+f.Reused.Bytes != f.Bytes || f.Reused.Files != 3 {
				t.Fatalf("copied metadata: %d bytes, new %+v, reused %+v", f.Bytes, f.New, f.Reused)
			}
			if toS3 {
				return
			}
			linked := 0
			for _, f := range storageFiles(t, filepath.Join(dest, backupName(second))) {
				a, errA := os.Stat(filepath.Join(dest, backupName(first), f))
				b, err := os.Stat(filepath.Join(dest, backupName(second), f))
				if err != nil {
					t.Fatal(err)
				}
				if errA == nil && os.SameFile(a, b) {
					linked++
				}
			}
			if linked != 3 {
				t.Fatalf("%d files of the second copy are links to the first, want 3", linked)
			}
		})
	}
}
