package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/s3test"
)

// Files of one content with their own modification times: each comes back with its own,
// whatever shares a copy of the content — an S3 backup's object store (plain or encrypted), a
// --checksum backup's link to the earlier backup's copy, a copy's link to an earlier copy in
// its destination, a local copy of an S3 backup. (Each gave every such file one time: the
// shared copy's.)
func TestRecordedTimesSurviveSharedCopies(t *testing.T) {
	ctx := context.Background()
	p := platformOfTwins(t)
	s := startSession(t, p, 2, queue.Config{})
	key := newAgeKey(t)
	srv := s3test.Start(t, nil, "backups")

	t.Run("S3 object store", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			o    coordinator.BackupOptions
		}{
			{"plain", coordinator.BackupOptions{}},
			{"encrypted", coordinator.BackupOptions{Recipients: key.recipients(t)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				o := tc.o
				o.StorageURL, o.SkipDB, o.BackupDir = p.storage, true, srv.URL("backups", tc.name, "")
				rep, err := s.Coordinator.Backup(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				assertTwinTimes(t, "restore of the S3 backup", restoreTwins(t, rep.Path, key))
				local := t.TempDir()
				cp, err := s.Coordinator.Copy(ctx, copyOptions(rep.Path, local))
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "plain" {
					assertTwinTimes(t, "the local copy's files", filepath.Join(cp.Path, "files"))
				}
				assertTwinTimes(t, "restore of the local copy", restoreTwins(t, cp.Path, key))
			})
		}
	})

	t.Run("checksum and copy links", func(t *testing.T) {
		dir, copies := t.TempDir(), t.TempDir()
		first, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{StorageURL: p.storage, SkipDB: true, BackupDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Coordinator.Copy(ctx, copyOptions(first.Path, copies)); err != nil {
			t.Fatal(err)
		}
		// The same content, a new time: unchanged for --checksum, and for a copy's sums.
		touched := time.Date(2024, 2, 29, 12, 0, 0, 123456789, time.UTC)
		if err := os.Chtimes(filepath.Join(p.storage, "twin-a"), touched, touched); err != nil {
			t.Fatal(err)
		}
		twinTimes["twin-a"] = touched
		defer func() { twinTimes["twin-a"] = twinTime("twin-a") }()
		time.Sleep(1100 * time.Millisecond) // backup names are by the second
		second, err := s.Coordinator.Backup(ctx, coordinator.BackupOptions{StorageURL: p.storage, SkipDB: true, BackupDir: dir, Checksum: true})
		if err != nil {
			t.Fatal(err)
		}
		assertTwinTimes(t, "the --checksum backup's files", filepath.Join(second.Path, "files"))
		assertTwinTimes(t, "restore of the --checksum backup", restoreTwins(t, second.Path, key))
		cp, err := s.Coordinator.Copy(ctx, copyOptions(second.Path, copies))
		if err != nil {
			t.Fatal(err)
		}
		assertTwinTimes(t, "the copy's files", filepath.Join(cp.Path, "files"))
	})
}

// twinTimes are the modification times of the twin files, which share one content.
var twinTimes = map[string]time.Time{"twin-a": twinTime("twin-a"), "twin-b": twinTime("twin-b"), "twin-c": twinTime("twin-c")}

func twinTime(name string) time.Time {
	return time.Date(2001+int(name[len(name)-1]-'a'), 1, 2, 3, 4, 5, 600700800, time.UTC)
}

// platformOfTwins is a storage of three files with one content and three times.
func platformOfTwins(t *testing.T) platformFixture {
	t.Helper()
	dir := t.TempDir()
	for name, mtime := range twinTimes {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte("the same bytes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return platformFixture{storage: dir}
}

// restoreTwins restores backup's files into a new folder and returns it.
func restoreTwins(t *testing.T, backup string, key ageKey) string {
	t.Helper()
	out := t.TempDir()
	ids := key.identities(t)
	_, err := restoreWithKeys(t, platformFixture{storage: out}, coordinator.RestoreOptions{Source: backup, SkipDB: true, Identities: ids}, ids)
	if err != nil {
		t.Fatalf("restore %s: %v", backup, err)
	}
	return out
}

// assertTwinTimes checks that each twin in dir has its own time.
func assertTwinTimes(t *testing.T, what, dir string) {
	t.Helper()
	for name, want := range twinTimes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: %s has time %s, want its own %s", what, name, fi.ModTime().UTC().Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
}
