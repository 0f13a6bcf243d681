package coordinator

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
)

// The copy tasks of an encrypted archive encrypt their parts to the run's key; a resumed run
// (new coordinator, new key) cannot read the parts an earlier one wrote, so it runs those
// tasks again instead of keeping their results. A plain archive keeps them.
func TestEncryptedArchivePartsRedoneOnResume(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, encrypted := range []bool{false, true} {
		o := BackupOptions{Compress: true}
		if encrypted {
			o.Recipients = rc
		}
		top := "backup_20240101_000000"
		done := &messages.Task{ID: "copy-a-0000", Copy: &messages.CopyTask{Archive: &messages.ArchivePart{Top: top, Output: ".wnb/parts/copy-a-0000.tar.gz", Compression: "gzip"},
			Recipients: []string{"age1previousrunkey"}}}
		todo := &messages.Task{ID: "copy-b-0000", Copy: &messages.CopyTask{}}
		r := &backupRun{o: o, done: map[string]*messages.Result{done.ID: {Task: done.ID}}}
		if err := r.archiveParts(context.Background(), []*messages.Task{done, todo}); err != nil {
			t.Fatal(err)
		}
		if !encrypted {
			if r.done[done.ID] == nil || len(todo.Copy.Recipients) != 0 || r.runKey != nil {
				t.Fatalf("plain archive: done %v, recipients %v", r.done, todo.Copy.Recipients)
			}
			continue
		}
		if r.done[done.ID] != nil {
			t.Fatal("a part encrypted to an earlier run key was kept")
		}
		for _, task := range []*messages.Task{done, todo} {
			c := task.Copy
			if len(c.Recipients) != 1 || c.Recipients[0] != r.runKey.Recipient() || !strings.HasPrefix(c.Archive.Output, ".wnb/parts/"+task.ID) {
				t.Fatalf("task %s: recipients %v (run key %s), output %q", task.ID, c.Recipients, r.runKey.Recipient(), c.Archive.Output)
			}
		}
	}
}

// A killed publish of an encrypted archive is finished by reading its sidecar: one that is a
// FIFO (a plain read would wait for a writer for ever), a folder, or larger than any metadata
// is refused at once, naming it, and nothing is published in its name.
func TestFinishSealedRefusesSpecialSidecar(t *testing.T) {
	const name = "backup_20240101_000000.tar.gz.age"
	for _, tc := range []struct {
		kind string
		make func(t *testing.T, path string)
		temp bool // the sidecar still waits under its temporary name
	}{
		{"fifo", mkfifo, false},
		{"fifo waiting", mkfifo, true},
		{"folder", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"oversized", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, layout.MaxMetadataSize+1); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			dir := t.TempDir()
			d := &localDestination{backupDir: dir, run: "20240101T000000-0000abcd"}
			if err := os.WriteFile(filepath.Join(dir, name), []byte("sealed archive"), 0o600); err != nil {
				t.Fatal(err)
			}
			sidecar := filepath.Join(dir, layout.SidecarName(name))
			if tc.temp {
				sidecar = d.sidecarTemp(name)
			}
			tc.make(t, sidecar)
			type answer struct {
				meta *layout.Metadata
				err  error
			}
			got := make(chan answer, 1)
			go func() {
				meta, err := d.finishSealed(context.Background(), name, nil)
				got <- answer{meta, err}
			}()
			select {
			case a := <-got:
				if a.err == nil || !strings.Contains(a.err.Error(), sidecar) {
					t.Fatalf("finishSealed = %v, %v; want an error naming %s", a.meta, a.err, sidecar)
				}
				if _, err := os.Lstat(filepath.Join(dir, layout.SidecarName(name))); tc.temp && err == nil {
					t.Error("a sidecar that could not be read was published")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("finishSealed still reading the sidecar after 10s")
			}
		})
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
}
