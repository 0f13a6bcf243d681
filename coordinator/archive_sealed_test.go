package coordinator

import (
	"context"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/internal/encryption"
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
