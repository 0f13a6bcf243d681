//go:build linux

package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
)

// A restore from an archive links each file from its own unpacked, checked copy into a local
// storage on the same filesystem: no worker reads a file to copy it, the files are the
// backup's with the permissions its metadata records, and once the unpacked copy is removed
// each restored file is the only name of its data; so does a restore of one book from an
// archive. A restore from a backup folder copies every
// file: a restored file is never the backup's own, which the platform could then change.
func TestRestoreLinksOnlyUnpackedFiles(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	key := newSealKey(t)
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "archive", true: "encrypted archive"}[sealed], func(t *testing.T) {
			o := coordinator.RestoreOptions{Source: archiveOf(t, src, sealed, key)}
			if sealed {
				o.Identities = key.identities
			}
			target := emptyTarget(t, database.SQLite)
			reads := workerReads(t)
			rep := restoreAll(t, target, o, src.summary.Files)
			if n := reads.Load(); n != 0 {
				t.Errorf("the workers read %d of %d files to copy them: want each linked from the unpacked archive", n, rep.Files)
			}
			plain := unpacked(t, o.Source, key)
			compareWithBackup(t, plain, target)
			checkRecordedModes(t, plain, target.storage)
			for rel := range treeFiles(t, target.storage) {
				if n := links(t, filepath.Join(target.storage, rel)); n != 1 {
					t.Errorf("%s has %d names after the restore: the unpacked copy is left", rel, n)
				}
			}
		})
	}
	t.Run("book from an archive", func(t *testing.T) {
		archive := archiveOf(t, src, false, sealKey{})
		target := emptyTarget(t, database.SQLite)
		reads := workerReads(t)
		rep, err := restoreSelected(t, target, archive, coordinator.SelectOptions{Books: []string{"2"}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Files == 0 || rep.Files >= int64(src.summary.Files) {
			t.Fatalf("%d files restored for one book of %d files", rep.Files, src.summary.Files)
		}
		if n := reads.Load(); n != 0 {
			t.Errorf("the workers read %d of %d files to copy them: want each linked from the unpacked archive", n, rep.Files)
		}
		plain := unpacked(t, archive, sealKey{})
		restored := treeFiles(t, target.storage)
		if int64(len(restored)) != rep.Files {
			t.Fatalf("the storage holds %d files, the report says %d restored", len(restored), rep.Files)
		}
		for rel, data := range restored {
			want, err := os.ReadFile(filepath.Join(plain, layout.FilesDir, rel))
			if err != nil || string(want) != string(data) {
				t.Errorf("%s differs from the backup's copy (%v)", rel, err)
			}
			if n := links(t, filepath.Join(target.storage, rel)); n != 1 {
				t.Errorf("%s has %d names after the restore: the unpacked copy is left", rel, n)
			}
		}
	})
	t.Run("folder", func(t *testing.T) {
		folder := backupOf(t, src, false)
		target := emptyTarget(t, database.SQLite)
		reads := workerReads(t)
		rep := restoreAll(t, target, coordinator.RestoreOptions{Source: folder}, src.summary.Files)
		if n := reads.Load(); n != rep.Files {
			t.Errorf("the workers read %d of %d files: want every file of a backup folder copied", n, rep.Files)
		}
		compareWithBackup(t, folder, target)
		for _, rel := range backupFiles(t, folder) {
			in, err := os.Stat(filepath.Join(folder, rel))
			if err != nil {
				t.Fatal(err)
			}
			out, err := os.Stat(filepath.Join(target.storage, rel[len(layout.FilesDir)+1:]))
			if err != nil {
				t.Fatal(err)
			}
			if os.SameFile(in, out) {
				t.Errorf("%s is the backup's own file (inode %d): the storage may change the backup", rel, in.Sys().(*syscall.Stat_t).Ino)
			}
		}
	})
}

// restoreAll restores the whole backup o.Source into target and checks that every one of the
// files it holds was restored.
func restoreAll(t *testing.T, target platformFixture, o coordinator.RestoreOptions, files int) *coordinator.RestoreReport {
	t.Helper()
	rep, err := restoreInto(t, target, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != int64(files) || rep.Failed != 0 || files == 0 {
		t.Fatalf("%d files restored (want %d), %d failed", rep.Files, files, rep.Failed)
	}
	return rep
}

// archiveOf backs p up into a .tar.gz, or with sealed a .tar.gz.age encrypted to key.
func archiveOf(t *testing.T, p platformFixture, sealed bool, key sealKey) string {
	t.Helper()
	o := coordinator.BackupOptions{DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), Compress: true, ChunkRows: 50}
	if sealed {
		o.Recipients = key.recipients
	}
	rep, err := startSession(t, p, 2, queue.Config{}).Coordinator.Backup(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep.Path
}

// unpacked unpacks (and decrypts with key) the archive into a folder of the test's, returning
// the backup folder.
func unpacked(t *testing.T, archive string, key sealKey) string {
	t.Helper()
	b, err := coordinator.OpenBackupDecrypting(context.Background(), archive, t.TempDir(), key.identities, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Dir
}

// links is the number of names of the file at p.
func links(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Nlink)
}
