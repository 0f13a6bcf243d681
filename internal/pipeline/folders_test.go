package pipeline_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/storage/storagetest"
)

// A backup records the storage's empty folders and the folders with permissions of their own,
// which its files do not bring back, without a warning, and a whole restore makes them again, from a backup
// folder and from an archive: a nested empty folder is there, a private folder is 0700 again,
// a read-only folder 0555 with its file inside.
func TestRestoreBringsBackFolders(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	folders := map[string]fs.FileMode{"uploads/2025/01": 0o755, "private": 0o700, "frozen": 0o555}
	for dir, mode := range folders {
		p := filepath.Join(src.storage, dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if dir != "uploads/2025/01" {
			if err := os.WriteFile(filepath.Join(p, "kept.txt"), []byte(dir), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(src.storage, "frozen"), 0o755) })
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "folder", true: "archive"}[compress], func(t *testing.T) {
			brep, err := startSession(t, src, 2, queue.Config{}).Coordinator.Backup(context.Background(), coordinator.BackupOptions{
				DatabaseURL: src.dbURL, StorageURL: src.storage, BackupDir: t.TempDir(), Compress: compress,
			})
			if err != nil {
				t.Fatal(err)
			}
			if brep.Folders != len(folders) || len(brep.Warnings) != 0 {
				t.Errorf("the backup recorded %d folders (want %d), warned %q", brep.Folders, len(folders), brep.Warnings)
			}
			backup := brep.Path
			target := emptyTarget(t, database.SQLite)
			t.Cleanup(func() { os.Chmod(filepath.Join(target.storage, "frozen"), 0o755) })
			rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: backup})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Plan.Folders != len(folders) {
				t.Errorf("the plan brings back %d folders, want %d", rep.Plan.Folders, len(folders))
			}
			for dir, mode := range folders {
				fi, err := os.Stat(filepath.Join(target.storage, dir))
				if err != nil || !fi.IsDir() || fi.Mode().Perm() != mode {
					t.Errorf("folder %s after the restore: %v (%v), want a folder of mode %04o", dir, fi, err, mode)
				}
			}
			for _, f := range []string{"private/kept.txt", "frozen/kept.txt"} {
				if _, err := os.Stat(filepath.Join(target.storage, f)); err != nil {
					t.Errorf("%s not restored: %v", f, err)
				}
			}
			for _, w := range rep.Plan.Warnings {
				t.Errorf("restore warning: %s", w)
			}
		})
	}
}

// A restore run as root into a storage folder of another user's gives that user and group
// every file and folder it makes, as the platform's own would be, whichever way the file is
// put in place: copied from a folder backup, linked from an archive's unpacked copy, or from
// an encrypted backup's decrypted one; a recorded empty folder too. (Made by root, they would
// be out of the platform's reach: no upload into a restored folder, no file replaced.)
func TestRestoreGivesFilesToStorageOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root gives files to another owner")
	}
	const uid, gid = 4242, 4343
	src := sqlitePlatform(t, demo.DefaultOptions())
	if err := os.MkdirAll(filepath.Join(src.storage, "uploads/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := newAgeKey(t)
	for _, tc := range []struct {
		name      string
		compress  bool
		encrypted bool
		// toMake: the storage folder does not exist; the folder it is made in is the user's.
		toMake bool
	}{{"folder", false, false, false}, {"archive", true, false, false}, {"encrypted", false, true, false}, {"storage folder to make", false, false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSession(t, src, 2, queue.Config{})
			bo := coordinator.BackupOptions{DatabaseURL: src.dbURL, StorageURL: src.storage, BackupDir: t.TempDir(), Compress: tc.compress}
			ro := coordinator.RestoreOptions{}
			if tc.encrypted {
				bo.Recipients, ro.Identities = key.recipients(t), key.identities(t)
			}
			brep, err := s.Coordinator.Backup(context.Background(), bo)
			if err != nil {
				t.Fatal(err)
			}
			target := emptyTarget(t, database.SQLite)
			owned := target.storage
			if tc.toMake {
				target.storage = filepath.Join(owned, "srv", "media")
			}
			if err := os.Mkdir(owned, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(owned, uid, gid); err != nil {
				t.Fatal(err)
			}
			ro.Source = brep.Path
			rep, err := restoreWithKeys(t, target, ro, ro.Identities)
			if err != nil {
				t.Fatal(err)
			}
			if want := "4242:4343"; rep.Plan.Owner != want {
				t.Errorf("the plan gives the files to %q, want %q", rep.Plan.Owner, want)
			}
			var files int
			err = filepath.WalkDir(target.storage, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() {
					files++
				}
				if u, g := storagetest.OwnerOf(t, p); u != uid || g != gid {
					t.Errorf("%s belongs to %d:%d, want the storage's owner %d:%d", p, u, g, uid, gid)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if files == 0 {
				t.Fatal("nothing restored")
			}
			if u, g := storagetest.OwnerOf(t, filepath.Dir(target.storage)); tc.toMake && (u != uid || g != gid) {
				t.Errorf("the folder made above the storage belongs to %d:%d, want %d:%d", u, g, uid, gid)
			}
			if fi, err := os.Stat(filepath.Join(target.storage, "uploads/empty")); err != nil || !fi.IsDir() {
				t.Errorf("the empty folder is not restored: %v", err)
			}
		})
	}
}
