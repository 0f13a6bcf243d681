package workers

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/references"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// refsTee reads the objects an export writes, as it writes them, and lists the file paths
// their file fields name (ExportTask.References) for the database ↔ storage cross-check.
// The list is read on a goroutine of its own through a pipe, so the export is never held in
// memory; in an encrypted run it is encrypted to the run key.
type refsTee struct {
	pw  *io.PipeWriter
	out storage.Writer
	// sealed, when the list is encrypted (ExportTask.ReferencesRecipients), is the age
	// stream in front of out.
	sealed io.WriteCloser
	done   chan error
	// ended is set once the reading goroutine's outcome was taken.
	ended bool
}

// startRefs starts the listing of e's references; nil when the task asks for none or the
// model has no file field.
func startRefs(ctx context.Context, dest *storage.Bucket, e *messages.ExportTask, m platform.Model) (*refsTee, error) {
	if e.References == "" || len(m.FileFields()) == 0 {
		return nil, nil
	}
	out, err := dest.Create(ctx, e.References, storage.Object{Mode: 0o600})
	if err != nil {
		return nil, fmt.Errorf("reference list: %w", err)
	}
	t := &refsTee{out: out, done: make(chan error, 1)}
	var list io.Writer = out
	if len(e.ReferencesRecipients) > 0 {
		rc, err := encryption.RecipientsFromPublic(e.ReferencesRecipients)
		if err == nil {
			t.sealed, err = rc.Encrypt(out)
		}
		if err != nil {
			out.Abort()
			return nil, fmt.Errorf("reference list: %w", err)
		}
		list = t.sealed
	}
	pr, pw := io.Pipe()
	t.pw = pw
	go func() {
		lw := references.NewListWriter(list)
		// The export writes objects without brackets (the opener adds them below the tee).
		err := references.Scan(ctx, m, pr, true, lw.Add)
		if err == nil {
			err = lw.Flush()
		}
		if err == nil && t.sealed != nil {
			err = t.sealed.Close() // the age stream's last chunk
		}
		if err != nil {
			pr.CloseWithError(err) // the export's next write fails with it
		}
		t.done <- err
	}()
	return t, nil
}

// writer returns body with the tee beside it (body itself when t is nil).
func (t *refsTee) writer(body io.Writer) io.Writer {
	if t == nil {
		return body
	}
	return io.MultiWriter(body, t.pw)
}

// finish ends the listing and commits the list.
func (t *refsTee) finish() error {
	if t == nil {
		return nil
	}
	t.pw.Close()
	t.ended = true
	if err := <-t.done; err != nil {
		return fmt.Errorf("reference list: %w", err)
	}
	if err := t.out.Commit(); err != nil {
		return fmt.Errorf("reference list: %w", err)
	}
	return nil
}

// abort stops the listing and leaves no list behind (it is a no-op after finish).
func (t *refsTee) abort() {
	if t == nil {
		return
	}
	if !t.ended {
		t.pw.CloseWithError(errExportAborted)
		<-t.done
		t.ended = true
	}
	t.out.Abort()
}

var errExportAborted = errors.New("export aborted")
