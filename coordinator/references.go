package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/references"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// maxReferenceWarnings bounds the warnings that name a missing reference one by one; the
// metadata lists more (layout.MaxMissingListed) and counts them all.
const maxReferenceWarnings = 20

// Reasons a backup did not cross-check its rows with its files.
const (
	refsSkipFiles = "--skip-files: the backup holds no files to check the rows' file fields against"
	refsSkipDB    = "--skip-db: the backup holds no rows whose file fields name files"
)

// refsKey is where export task id of m lists the file paths its rows name: only when the
// backup holds files to check them against and m has file fields.
func (r *backupRun) refsKey(m platform.Model, id string) string {
	if r.o.SkipFiles || len(m.FileFields()) == 0 {
		return ""
	}
	return path.Join(internalDir, "refs", id+".jsonl")
}

// refsRecipients, in an encrypted run, is what the reference lists are encrypted to: the run
// key, which only this coordinator holds.
func (r *backupRun) refsRecipients(key string) []string {
	if key == "" || r.runKey == nil {
		return nil
	}
	return []string{r.runKey.Recipient()}
}

// pendingReferences is a check of the references running on a goroutine of its own.
type pendingReferences struct {
	done     chan struct{}
	rep      *layout.References
	warnings []string
	err      error
}

// startReferences starts checkReferences; its outcome is wait's.
func (r *backupRun) startReferences(ctx context.Context, index *layout.FileIndexWriter) *pendingReferences {
	p := &pendingReferences{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.rep, p.warnings, p.err = r.checkReferences(ctx, index)
	}()
	return p
}

// wait returns the check's outcome once it has ended; it may be called again.
func (p *pendingReferences) wait() (*layout.References, []string, error) {
	<-p.done
	return p.rep, p.warnings, p.err
}

// checkReferences is the database ↔ storage cross-check: the paths the export tasks listed
// are joined with the files backed up in the same run (index holds them). A row naming a
// file the backup lacks is a warning naming it (the platform is broken, the backup is not).
func (r *backupRun) checkReferences(ctx context.Context, index *layout.FileIndexWriter) (_ *layout.References, warnings []string, err error) {
	switch {
	case r.o.SkipFiles:
		return &layout.References{Reason: refsSkipFiles}, nil, nil
	case r.o.SkipDB:
		return &layout.References{Reason: refsSkipDB}, nil, nil
	}
	dir, rmdir, err := r.refsSpillDir()
	if err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	defer rmdir()
	chk := references.NewChecker(dir, sumsBudget())
	defer chk.Close()
	unchecked, err := r.gatherReferences(ctx, chk)
	if err != nil {
		return nil, nil, err
	}
	rep, err := r.joinReferences(ctx, chk, index)
	if err != nil {
		return nil, nil, fmt.Errorf("backup: check references: %w", err)
	}
	if len(unchecked) > 0 {
		rep.Checked = false
		rep.Reason = fmt.Sprintf("the rows of %v were not checked: their export wrote no list of file paths", unchecked)
		warnings = append(warnings, "references: "+rep.Reason+" (a worker of an older version?)")
	}
	warnings = append(warnings, references.Warnings(rep, maxReferenceWarnings)...)
	if rep.Missing > 0 {
		r.log.Warn("rows name files the storage does not hold", "missing", rep.Missing, "refs", rep.Refs)
	}
	return rep, warnings, nil
}

// joinReferences joins the references in chk with the backed-up files. The index yields
// them by path, which is their keys' order unless names were escaped: then they are joined
// as they come, without a sort of their own; else they are sorted first.
func (r *backupRun) joinReferences(ctx context.Context, chk *references.Checker, index *layout.FileIndexWriter) (*layout.References, error) {
	names := r.files.NameEncoding
	rep, err := chk.CheckSorted(ctx, func(fn func(string) error) error {
		return index.Each(func(e messages.FileEntry) error { return fn(references.KeyOf(e, names)) })
	})
	if !errors.Is(err, references.ErrUnsorted) {
		return rep, err
	}
	if err := index.Each(func(e messages.FileEntry) error { return chk.AddFile(references.KeyOf(e, names)) }); err != nil {
		return nil, err
	}
	return chk.Check(ctx, nil)
}

// refsSpillDir is where the references' sort spills: the staging area's working folder, but
// in an encrypted run (whose staging area holds no plaintext) a private temporary folder of
// the coordinator's host, swept by the next run if this one is killed.
func (r *backupRun) refsSpillDir() (string, func(), error) {
	if r.runKey == nil {
		return spillDir(r.stage, "refs-runs")
	}
	dir, err := scratch.MkdirTemp("", "wnb-refs-runs-")
	if err != nil {
		return "", nil, fmt.Errorf("refs-runs: %w", err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// gatherReferences reads the export tasks' lists into chk; it returns the models whose tasks
// left none.
func (r *backupRun) gatherReferences(ctx context.Context, chk *references.Checker) ([]string, error) {
	var unchecked []string
	dest := r.stage.Bucket()
	for _, m := range r.models {
		for _, t := range r.plans[m.Label] {
			if t.Export.References == "" {
				continue
			}
			rc, _, err := dest.Open(ctx, t.Export.References)
			if errors.Is(err, storage.ErrNotExist) {
				unchecked = append(unchecked, m.Label)
				break
			}
			if err != nil {
				return nil, fmt.Errorf("backup: read the file paths task %s listed: %w", t.ID, err)
			}
			err = r.readRefs(rc, t.Export, chk)
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("backup: read the file paths task %s listed: %w", t.ID, err)
			}
		}
	}
	return unchecked, nil
}

// readRefs reads one task's reference list into chk, decrypting it with the run key when the
// task encrypted it.
func (r *backupRun) readRefs(rc io.Reader, e *messages.ExportTask, chk *references.Checker) error {
	if len(e.ReferencesRecipients) > 0 {
		if r.runKey == nil {
			return errors.New("the list is encrypted to a run key this coordinator does not hold")
		}
		plain, err := r.runKey.Identities().Decrypt(rc)
		if err != nil {
			return err
		}
		rc = plain
	}
	return references.ReadList(rc, chk.Add)
}
