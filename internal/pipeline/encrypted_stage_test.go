package pipeline_test

import (
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/encryption/enctest"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
	"github.com/webnovel/webnovel-backup/workers"
)

// stagedLeftovers lists what under dir carries a temporary name (storage.TempPrefix): a staging
// folder or a staged file left behind.
func stagedLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), storage.TempPrefix) {
			found = append(found, p)
		}
		if os.IsNotExist(err) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// workerReads counts the files the workers read (in a restore: the backup's .age files or
// objects) while it is set.
func workerReads(t *testing.T) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	remove := workers.SetReadHook(func(key string, r io.Reader) io.Reader {
		n.Add(1)
		return r
	})
	t.Cleanup(remove)
	return &n
}

// A restore of an encrypted backup into a local storage decrypts each file once: in its check
// pass, into a staging folder on the storage's filesystem, from which the workers link the
// files into place without reading the backup's .age copies again. The files restored are the
// plaintext's, with the permissions the metadata records, and no staging name is left, into
// a storage root that existed or not.
func TestRestoreEncryptedDecryptsOnce(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	b := encryptedBackupOf(t, src, "")
	s3 := s3test.Start(t, nil, "backups")
	objects := s3.URL("backups", "nightly/"+enctest.ObjectStore(t, copyTree(t, b.dir), s3.URL("backups", "nightly", ""), b.sizes), "")
	tests := []struct {
		name       string
		source     string
		rootExists bool
	}{
		{"folder, new root", b.dir, false},
		{"folder, existing root", b.dir, true},
		{"S3 object store, new root", objects, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := emptyTarget(t, database.SQLite)
			if tt.rootExists {
				os.MkdirAll(target.storage, 0o755)
			}
			reads := workerReads(t)
			rep, err := restoreWithKeys(t, target, coordinator.RestoreOptions{Source: tt.source, Identities: b.key.Identities}, b.key.Identities)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Files != int64(src.summary.Files) || rep.Failed != 0 {
				t.Fatalf("%d files restored (want %d), %d failed", rep.Files, src.summary.Files, rep.Failed)
			}
			if n := reads.Load(); n != 0 {
				t.Errorf("the workers read %d files of the backup: each file was decrypted twice", n)
			}
			compareWithBackup(t, b.plain, target)
			if left := stagedLeftovers(t, target.storage); len(left) > 0 {
				t.Errorf("left in the storage: %v", left)
			}
			checkRecordedModes(t, b.plain, target.storage)
		})
	}
}

// checkRecordedModes compares each restored file's permissions with what the plaintext
// backup's metadata records.
func checkRecordedModes(t *testing.T, plainBackup, root string) {
	t.Helper()
	meta, err := layout.ReadMetadata(plainBackup)
	if err != nil {
		t.Fatal(err)
	}
	modeOf := meta.Files.RecordedModes()
	n := 0
	for rel := range treeFiles(t, root) {
		want, ok := modeOf(layout.FilesDir + "/" + rel)
		if !ok {
			continue
		}
		fi, err := os.Stat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want.Perm() {
			t.Errorf("%s has mode %v, the backup records %v", rel, fi.Mode().Perm(), want.Perm())
		}
		n++
	}
	if n == 0 {
		t.Fatal("the backup records no file's mode")
	}
}

// lastFile is the last storage file (by name) of a backup folder.
func lastFile(t *testing.T, dir string) string {
	t.Helper()
	files := backupFiles(t, dir)
	return files[len(files)-1]
}

// A restore whose check pass fails on a file late in the list, after the others were staged,
// changes nothing in the storage and leaves no staged file, whether its root existed (kept as
// it was) or not (still absent).
func TestRestoreEncryptedLateDamageLeavesNoStage(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	for _, rootExists := range []bool{false, true} {
		t.Run(map[bool]string{false: "new root", true: "existing root"}[rootExists], func(t *testing.T) {
			b := encryptedBackupOf(t, src, "")
			last := lastFile(t, b.dir)
			editBytes(t, filepath.Join(b.dir, last), func(b []byte) []byte { b[len(b)-20] ^= 1; return b })
			resign(t, b.dir)
			target := emptyTarget(t, database.SQLite)
			var before map[string][]byte
			if rootExists {
				os.MkdirAll(target.storage, 0o755)
				os.WriteFile(filepath.Join(target.storage, "kept.txt"), []byte("kept"), 0o644)
				before = treeFiles(t, target.storage)
			}
			_, err := restoreWithKeys(t, target, coordinator.RestoreOptions{Source: b.dir, Identities: b.key.Identities}, b.key.Identities)
			if err == nil || !strings.Contains(err.Error(), last) || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("want a refusal naming %s as damaged, got %v", last, err)
			}
			if !rootExists {
				if _, err := os.Stat(target.storage); !os.IsNotExist(err) {
					t.Fatalf("the storage root %s was made (%v)", target.storage, err)
				}
				if left := stagedLeftovers(t, filepath.Dir(target.storage)); len(left) > 0 {
					t.Fatalf("left behind: %v", left)
				}
				return
			}
			after := treeFiles(t, target.storage)
			if len(after) != len(before) || string(after["kept.txt"]) != "kept" {
				t.Errorf("the storage changed: %d files, had %d", len(after), len(before))
			}
			if left := stagedLeftovers(t, target.storage); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// A restore of an encrypted backup into a local storage whose file system has not the space
// to stage the decrypted files says so in its log and falls back to decrypting each file in
// the workers, as into S3: every file is read by a worker once, the restore is exact, and no
// staging folder is made.
func TestRestoreEncryptedStagingFallsBackWithoutSpace(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	b := encryptedBackupOf(t, src, "")
	target := emptyTarget(t, database.SQLite)
	var asked atomic.Int64
	t.Cleanup(coordinator.SetDiskFreeHook(func(string) int64 { asked.Add(1); return 1 << 10 }))
	var logged syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	reads := workerReads(t)
	rep, err := restoreWithKeys(t, target, coordinator.RestoreOptions{Source: b.dir, Identities: b.key.Identities}, b.key.Identities)
	if err != nil {
		t.Fatal(err)
	}
	if asked.Load() == 0 {
		t.Fatal("the restore never asked for the free space: the hook tests nothing")
	}
	if !strings.Contains(logged.String(), "not enough free space in the storage to stage the checked files") {
		t.Errorf("the log does not say the files are not staged:\n%s", logged.String())
	}
	if rep.Files != int64(src.summary.Files) || rep.Failed != 0 {
		t.Fatalf("%d files restored (want %d), %d failed", rep.Files, src.summary.Files, rep.Failed)
	}
	if n := reads.Load(); n != rep.Files {
		t.Errorf("the workers read .age files %d times for %d files: want each decrypted by a worker once", n, rep.Files)
	}
	compareWithBackup(t, b.plain, target)
	checkRecordedModes(t, b.plain, target.storage)
	if left := stagedLeftovers(t, target.storage); len(left) > 0 {
		t.Errorf("left in the storage: %v", left)
	}
}

// Into an S3 storage, where the check pass stages nothing, each worker reads each .age file
// of the backup once: a decrypted file is not taken for one that changed while it was read
// (its plaintext is shorter than the file) and read again.
func TestRestoreEncryptedIntoS3ReadsEachFileOnce(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	b := encryptedBackupOf(t, src, "")
	s3 := s3test.Start(t, nil, "restored")
	target := emptyTarget(t, database.SQLite)
	target.storage = s3.URL("restored", "site", "")
	reads := workerReads(t)
	rep, err := restoreWithKeys(t, target, coordinator.RestoreOptions{Source: b.dir, Identities: b.key.Identities}, b.key.Identities)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != int64(src.summary.Files) || rep.Failed != 0 {
		t.Fatalf("%d files restored (want %d), %d failed", rep.Files, src.summary.Files, rep.Failed)
	}
	if n := reads.Load(); n != rep.Files {
		t.Errorf("the workers read .age files %d times for %d files", n, rep.Files)
	}
	compareWithBackup(t, b.plain, target)
}

// TestHelperStagedRestore is the child of TestRestoreEncryptedKilledWhileStaging: a restore
// that halts once a file is staged (WNB_TEST_HALT=stage), to be killed there.
func TestHelperStagedRestore(t *testing.T) {
	backup := os.Getenv("WNB_CHILD_STAGE_BACKUP")
	if backup == "" {
		t.Skip("only runs as the child of TestRestoreEncryptedKilledWhileStaging")
	}
	ids, err := encryption.ReadIdentityFile(os.Getenv("WNB_CHILD_STAGE_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	target := platformFixture{dbURL: os.Getenv("WNB_CHILD_STAGE_DB"), storage: os.Getenv("WNB_CHILD_STAGE_STORAGE")}
	_, err = restoreWithKeys(t, target, coordinator.RestoreOptions{Source: backup, Identities: ids}, ids)
	t.Fatalf("the restore was meant to be killed, but it finished: %v", err)
}

// A restore killed with SIGKILL while it stages decrypted files leaves them under temporary
// names only, which a listing of the storage does not show; the next restore removes them
// and restores exactly the backup.
func TestRestoreEncryptedKilledWhileStaging(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	b := encryptedBackupOf(t, src, "")
	target := emptyTarget(t, database.SQLite)
	child := haltChild(t, "TestHelperStagedRestore", "stage", "WNB_CHILD_STAGE_BACKUP="+b.dir, "WNB_CHILD_STAGE_KEY="+b.key.File,
		"WNB_CHILD_STAGE_DB="+target.dbURL, "WNB_CHILD_STAGE_STORAGE="+target.storage)
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()

	left := stagedLeftovers(t, target.storage)
	if len(left) < 2 {
		t.Fatalf("the killed restore left %v: no staged file to test with", left)
	}
	listed := storageKeys(t, target.storage)
	if len(listed) > 0 {
		t.Fatalf("the storage lists the killed restore's staged files as data: %v", listed)
	}
	rep, err := restoreWithKeys(t, target, coordinator.RestoreOptions{Source: b.dir, Identities: b.key.Identities}, b.key.Identities)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != int64(src.summary.Files) {
		t.Fatalf("%d files restored, want %d", rep.Files, src.summary.Files)
	}
	compareWithBackup(t, b.plain, target)
	if left := stagedLeftovers(t, target.storage); len(left) > 0 {
		t.Errorf("left after the next restore: %v", left)
	}
	if n := len(storageKeys(t, target.storage)); n != src.summary.Files {
		t.Errorf("the storage lists %d files, want %d", n, src.summary.Files)
	}
}

// storageKeys is what a listing of the local storage root shows (what a backup would copy).
func storageKeys(t *testing.T, root string) []string {
	t.Helper()
	return bucketKeys(t, root)
}
