package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/internal/retention"
	"github.com/webnovel/webnovel-backup/internal/verify"
)

// within runs fn and fails the test if it has not returned after limit: what it runs must not
// wait for ever.
func within(t *testing.T, limit time.Duration, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("%s still runs after %s", what, limit)
		return nil
	}
}

// said is everything a command said: its error and, for a verification, its problems.
func said(rep *verify.Report, err error) string {
	text := ""
	if err != nil {
		text = err.Error()
	}
	if rep != nil {
		text += "\n" + strings.Join(rep.Problems, "\n")
	}
	return text
}

// TestEncryptedRefusesSpecialFiles: the small files of an encrypted backup that are read whole
// (a passphrase backup's sealed key, an encrypted archive's sidecar) are refused at once, by
// name, when a FIFO stands in their place: restore, its dry run and verify end within the
// deadline, and the target is unchanged.
func TestEncryptedRefusesSpecialFiles(t *testing.T) {
	p := sqlitePlatform(t, demo.Options{Books: 2, ChaptersPerBook: 2, Users: 2, Authors: 1, Languages: 1, Seed: 5, NoFiles: true})
	os.MkdirAll(p.storage, 0o755)
	const pass = "correct horse battery staple"
	folder := backupWith(t, p, coordinator.BackupOptions{Passphrase: pass}).Path
	key := newAgeKey(t)
	archive := backupWith(t, p, coordinator.BackupOptions{Compress: true, Recipients: key.recipients(t)}).Path

	keyFIFO := withFIFO(t, folder, encryption.KeyFile)
	target := emptyTarget(t, database.SQLite)
	os.MkdirAll(target.storage, 0o755)
	before := state(t, target)
	for mode, o := range map[string]coordinator.RestoreOptions{"forced": {}, "dry run": {DryRun: true}} {
		t.Run("key/restore "+mode, func(t *testing.T) {
			o.Source, o.Passphrase = keyFIFO, pass
			err := restoreWithin(t, target, o, 30*time.Second)
			if err == nil || !strings.Contains(err.Error(), encryption.KeyFile+" is a fifo, not a regular file") {
				t.Fatalf("err = %v, want the FIFO refused by name", err)
			}
			if state(t, target) != before {
				t.Fatal("the refused restore changed the target")
			}
		})
	}
	t.Run("key/verify", func(t *testing.T) {
		var rep *verify.Report
		err := within(t, 30*time.Second, "verify --decrypt", func() (err error) {
			rep, err = verify.Verify(context.Background(), keyFIFO, verify.Options{Decrypt: true, Passphrase: pass, TempDir: t.TempDir()})
			return err
		})
		if text := said(rep, err); !strings.Contains(text, encryption.KeyFile+" is a fifo") {
			t.Fatalf("verify says %q, want the FIFO refused by name", text)
		}
	})

	sidecar := layout.SidecarName(archive)
	if err := os.Remove(sidecar); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(sidecar, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, decrypt := range map[string]bool{"sidecar/verify": false, "sidecar/verify --decrypt": true} {
		t.Run(name, func(t *testing.T) {
			var rep *verify.Report
			err := within(t, 30*time.Second, name, func() (err error) {
				o := verify.Options{TempDir: t.TempDir()}
				if decrypt {
					o.Decrypt, o.Identities = true, key.identities(t)
				}
				rep, err = verify.Verify(context.Background(), archive, o)
				return err
			})
			if text := said(rep, err); !strings.Contains(text, filepath.Base(sidecar)+" is a fifo") {
				t.Fatalf("verify says %q, want the FIFO refused by name", text)
			}
		})
	}
}

// TestOversizedMetadataRefused: a backup's metadata is read whole, so one grown past any real
// size (here 64 MiB, a sparse file) is refused by name, without being read, by every command
// that reads it: list, copy, verify and restore (each within the deadline).
func TestOversizedMetadataRefused(t *testing.T) {
	p := sqlitePlatform(t, demo.Options{Books: 1, ChaptersPerBook: 1, Users: 1, Authors: 1, Languages: 1, Seed: 5, NoFiles: true})
	os.MkdirAll(p.storage, 0o755)
	backup := copyTree(t, backupOf(t, p, false))
	if err := os.Truncate(filepath.Join(backup, layout.FileMetadata), 64<<20); err != nil {
		t.Fatal(err)
	}
	const want = "larger than 16777216 bytes"
	check := func(t *testing.T, text string) {
		t.Helper()
		if !strings.Contains(text, layout.FileMetadata) || !strings.Contains(text, want) {
			t.Fatalf("says %q, want %s refused as %s", text, layout.FileMetadata, want)
		}
	}
	t.Run("list", func(t *testing.T) {
		var text string
		within(t, 30*time.Second, "list", func() error {
			d, err := retention.OpenDestination(context.Background(), filepath.Dir(backup))
			if err != nil {
				return err
			}
			defer d.Close()
			list, err := d.List(context.Background(), retention.ListOptions{})
			for _, b := range list {
				if b.Name == filepath.Base(backup) {
					text = string(b.Status) + ": " + b.Problem
				}
			}
			return err
		})
		if !strings.HasPrefix(text, string(retention.StatusIncomplete)) {
			t.Fatalf("listed as %q, want incomplete", text)
		}
		check(t, text)
	})
	t.Run("copy", func(t *testing.T) {
		s := startSession(t, p, 1, queue.Config{})
		err := within(t, 30*time.Second, "copy", func() error {
			_, err := s.Coordinator.Copy(context.Background(), copyOptions(backup, t.TempDir()))
			return err
		})
		check(t, said(nil, err))
	})
	t.Run("verify", func(t *testing.T) {
		var rep *verify.Report
		err := within(t, 30*time.Second, "verify", func() (err error) {
			rep, err = verify.Verify(context.Background(), backup, verify.Options{TempDir: t.TempDir()})
			return err
		})
		check(t, said(rep, err))
	})
	t.Run("restore", func(t *testing.T) {
		target := emptyTarget(t, database.SQLite)
		os.MkdirAll(target.storage, 0o755)
		check(t, said(nil, restoreWithin(t, target, coordinator.RestoreOptions{Source: backup}, 30*time.Second)))
	})
}
