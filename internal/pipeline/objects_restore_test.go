package pipeline_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/layout/objtest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/storage"
)

// objectStoreDest is a destination root holding object-store backups, on S3 or in a folder.
type objectStoreDest struct {
	root string                                   // the destination's location
	at   func(name string) string                 // a backup's location under it
	put  func(t *testing.T, key string, b []byte) // replaces an object under the root
	del  func(t *testing.T, key string)
}

func objectStoreDests(t *testing.T) map[string]func(t *testing.T) objectStoreDest {
	return map[string]func(t *testing.T) objectStoreDest{
		"s3": func(t *testing.T) objectStoreDest {
			s3 := s3test.Start(t, nil, "backups")
			return objectStoreDest{
				root: s3.URL("backups", "nightly", ""),
				at:   func(name string) string { return s3.URL("backups", "nightly/"+name, "") },
				put:  func(t *testing.T, key string, b []byte) { s3.Put(t, "backups", "nightly/"+key, b) },
				del: func(t *testing.T, key string) {
					if _, err := s3.Backend.DeleteObject("backups", "nightly/"+key); err != nil {
						t.Fatal(err)
					}
				},
			}
		},
		"folder": func(t *testing.T) objectStoreDest {
			root := filepath.Join(t.TempDir(), "nightly")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			return objectStoreDest{
				root: root,
				at:   func(name string) string { return filepath.Join(root, name) },
				put: func(t *testing.T, key string, b []byte) {
					if err := os.WriteFile(filepath.Join(root, key), b, 0o600); err != nil {
						t.Fatal(err)
					}
				},
				del: func(t *testing.T, key string) {
					if err := os.Remove(filepath.Join(root, key)); err != nil {
						t.Fatal(err)
					}
				},
			}
		},
	}
}

// An object-store backup (files in the destination's objects/, an index in the backup) is
// restored exactly, from S3 or a folder, each object read once (into the storage's stage,
// then linked); a missing object, and a corrupt one, is refused before anything changes,
// naming the file. Without the room to stage the files, the workers check each object as
// they copy it: a corrupt object fails that file alone, naming it.
func TestRestoreObjectStoreBackup(t *testing.T) {
	src := sqlitePlatform(t, demo.DefaultOptions())
	folder := backupOf(t, src, false)
	for name, dest := range objectStoreDests(t) {
		t.Run(name, func(t *testing.T) {
			d := dest(t)
			backup, index := objtest.Convert(t, folder, d.root)
			target := emptyTarget(t, "sqlite")
			reads := workerReads(t)
			rep, err := restoreInto(t, target, coordinator.RestoreOptions{Source: d.at(backup)})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Files != int64(len(index)) || rep.Failed != 0 {
				t.Fatalf("restored %d files (%d failed), the index lists %d", rep.Files, rep.Failed, len(index))
			}
			if n := reads.Load(); n != 0 {
				t.Errorf("the workers read %d objects: want each file linked from the check pass's stage", n)
			}
			compareWithBackup(t, folder, target)

			// Corrupt: same size, other bytes. Refused before anything changes, naming the file.
			victim := index[len(index)/2]
			obj := layout.ObjectKey(victim.SHA256)
			good := readObject(t, d.root, obj)
			bad := append([]byte(nil), good...)
			bad[0] ^= 0xff
			d.put(t, obj, bad)
			target = emptyTarget(t, "sqlite")
			if err := os.Mkdir(target.storage, 0o755); err != nil {
				t.Fatal(err)
			}
			before := state(t, target)
			_, err = restoreInto(t, target, coordinator.RestoreOptions{Source: d.at(backup)})
			if err == nil || !strings.Contains(err.Error(), victim.Path) || !strings.Contains(err.Error(), obj) {
				t.Fatalf("restore with a corrupt object: %v, want a refusal naming %s", err, victim.Path)
			}
			if state(t, target) != before {
				t.Fatal("a restore refused for a corrupt object changed the target")
			}

			// Without room for the stage, the workers check as they copy: the file fails alone.
			remove := coordinator.SetDiskFreeHook(func(string) int64 { return 0 })
			target = emptyTarget(t, "sqlite")
			rep, err = restoreInto(t, target, coordinator.RestoreOptions{Source: d.at(backup)})
			remove()
			var pe *coordinator.PartialError
			if !errors.As(err, &pe) || rep.Failed != 1 || !strings.Contains(pe.Error(), victim.Key) {
				t.Fatalf("restore with a corrupt object: %v (report %+v), want a partial restore naming %s", err, rep, victim.Key)
			}
			if _, err := os.Stat(filepath.Join(target.storage, filepath.FromSlash(victim.Key))); !os.IsNotExist(err) {
				t.Fatalf("the corrupt file was written: %v", err)
			}

			// Missing: refused before anything changes, naming the file.
			d.del(t, obj)
			target = emptyTarget(t, "sqlite")
			if err := os.Mkdir(target.storage, 0o755); err != nil {
				t.Fatal(err)
			}
			before = state(t, target)
			_, err = restoreInto(t, target, coordinator.RestoreOptions{Source: d.at(backup)})
			if err == nil || !strings.Contains(err.Error(), victim.Path) || !strings.Contains(err.Error(), "no object") {
				t.Fatalf("restore with a missing object: %v, want a refusal naming %s", err, victim.Path)
			}
			if state(t, target) != before {
				t.Fatal("a refused restore changed the target")
			}
		})
	}
}

func readObject(t *testing.T, root, key string) []byte {
	t.Helper()
	b, err := storage.Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, _, err := b.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
