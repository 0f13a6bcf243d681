package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// CopyOptions say which backup to copy where.
type CopyOptions struct {
	// Backup is the complete backup to copy: a folder or an archive, a local path or an s3://
	// location.
	Backup string
	// Dest is the destination to copy it into (a folder or an s3:// prefix), as --backup-dir.
	Dest string
	// FilesPerTask bounds one copy task (default 2000 files).
	FilesPerTask int
	// RunID is generated when empty.
	RunID string
}

// CopyReport is a finished copy.
type CopyReport struct {
	RunID string
	// Source is the copied backup (redacted), Path the copy.
	Source, Path string
	// Copied and Reused count the backup's storage files (and their bytes), as its metadata's
	// files.new and files.reused do: a reused file is a hard link to an earlier backup of the
	// destination or already in its object store, every other one is new there. An archive
	// is one file, copied.
	Copied, Bytes       int64
	Reused, ReusedBytes int64
	// Written counts what the copy wrote (WrittenBytes): the new files' content, once per
	// content in an object store, and the backup's own files (fixtures, manifest, index,
	// script), which are always copied.
	Written, WrittenBytes int64
	// AlreadyThere: the destination held this backup, complete and with the same manifest,
	// already; nothing was copied.
	AlreadyThere bool
	Duration     time.Duration
	TraceID      string
}

// Copy copies a complete backup into another destination through the queue: the source's
// manifest is verified first, every file is checked on arrival against it, and the copy is
// published like a backup (staged, metadata last) under the same name. The run is one trace.
func (c *Coordinator) Copy(ctx context.Context, o CopyOptions) (*CopyReport, error) {
	ctx, span := telemetry.StartRun(ctx, "copy")
	rep, err := c.copyBackup(ctx, o)
	var took time.Duration
	if err == nil {
		took = rep.Duration
		rep.TraceID = telemetry.TraceID(ctx)
	}
	telemetry.EndRun(span, "copy", outcome.Of(err), took, err)
	return rep, err
}

// copyRun is one copy as it goes through its phases: open the source, check the
// destination, claim, stage, plan, run the tasks, assemble, publish, end.
type copyRun struct {
	c     *Coordinator
	o     CopyOptions
	log   *slog.Logger
	start time.Time

	src       *copySource
	destRoot  *storage.Bucket
	destLocal bool
	track     *tracker
	stage     destination
	plan      *copyPlan
	rep       *CopyReport
	published bool
}

func (c *Coordinator) copyBackup(ctx context.Context, o CopyOptions) (rep *CopyReport, err error) {
	release, err := layout.Hold(o.Backup)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	defer release()
	r, err := c.newCopyRun(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if r.rep.AlreadyThere {
		r.rep.Duration = time.Since(r.start)
		return r.rep, r.publishSidecar(ctx)
	}
	runCtx, err := r.claim(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { r.end(rep, err) }()
	if r.stage, err = openDestination(runCtx, r.o.Dest, r.o.RunID); err != nil {
		return nil, fmt.Errorf("copy: destination %s: %w", redact.URL(r.o.Dest), err)
	}
	if r.plan, err = r.planCopy(runCtx); err != nil {
		return nil, fmt.Errorf("copy: plan: %w", err)
	}
	if err := r.runTasks(runCtx); err != nil {
		return nil, err
	}
	if err := r.assemble(runCtx); err != nil {
		return nil, err
	}
	if err := r.publish(runCtx); err != nil {
		return nil, fmt.Errorf("copy: publish into %s: %w", redact.URL(r.o.Dest), err)
	}
	if err := r.publishSidecar(runCtx); err != nil {
		return nil, err
	}
	r.rep.Duration = time.Since(r.start)
	r.log.Info("copy complete", "path", redact.URL(r.rep.Path), "copied", r.rep.Copied, "reused", r.rep.Reused)
	return r.rep, nil
}

// newCopyRun settles the options, opens and verifies the source and looks at what the
// destination holds under the backup's name.
func (c *Coordinator) newCopyRun(ctx context.Context, o CopyOptions) (_ *copyRun, err error) {
	r := &copyRun{c: c, start: time.Now()}
	if o.Backup == "" || o.Dest == "" {
		return nil, outcome.Errorf(outcome.Usage, "copy: a backup and a destination are needed")
	}
	o.Backup, o.Dest = absLocation(o.Backup), absLocation(o.Dest)
	if o.FilesPerTask <= 0 {
		o.FilesPerTask = 2000
	}
	if o.RunID == "" {
		o.RunID = NewRunID(r.start)
	}
	r.o, r.log = o, c.log.With("run", o.RunID)
	telemetry.Annotate(ctx, telemetry.KeyRun.String(o.RunID))
	r.rep = &CopyReport{RunID: o.RunID, Source: redact.URL(o.Backup)}
	if r.src, err = openCopySource(ctx, o.Backup); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if err := RefuseDestinationInBackup("copy: destination", o.Dest); err != nil {
		return nil, err
	}
	r.destLocal = !storage.IsS3(o.Dest)
	if r.destLocal {
		if err := os.MkdirAll(o.Dest, layout.DirMode); err != nil {
			return nil, fmt.Errorf("copy: destination %s: %w", redact.URL(o.Dest), err)
		}
	}
	if r.destRoot, err = storage.Open(ctx, o.Dest); err != nil {
		return nil, fmt.Errorf("copy: destination %s: %w", redact.URL(o.Dest), err)
	}
	if err := r.checkDestName(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// absLocation makes a local path absolute (reports and the run registry need it).
func absLocation(loc string) string {
	if storage.IsS3(loc) {
		return loc
	}
	loc = storage.LocalPath(loc)
	if abs, err := filepath.Abs(loc); err == nil {
		return abs
	}
	return loc
}

// checkDestName looks for the backup's name in the destination. A complete backup with the
// same manifest (or an archive with the same SHA-256) makes the copy a success that does
// nothing: a rerun of a copy that finished. Anything else under that name is refused, named,
// except on S3 a prefix without metadata — a publication cut short, which the copy
// finishes (its copies are idempotent).
func (r *copyRun) checkDestName(ctx context.Context) error {
	name, where := r.src.name, storage.Join(r.o.Dest, r.src.name)
	if r.destLocal {
		where = filepath.Join(r.o.Dest, r.src.name)
	}
	if r.src.archive {
		sum, err := r.destRoot.SHA256(ctx, name)
		switch {
		case errors.Is(err, storage.ErrNotExist):
			return nil
		case err != nil:
			return fmt.Errorf("copy: look at %s: %w", redact.URL(where), err)
		case sum == r.src.archiveSum:
			r.rep.AlreadyThere, r.rep.Path = true, where
			return nil
		}
		return outcome.Errorf(outcome.Refused, "copy refused: %s already holds another archive named %s (sha256 %s, the source's is %s)", redact.URL(r.o.Dest), name, sum, r.src.archiveSum)
	}
	if _, err := r.destRoot.Stat(ctx, name+layout.ArchiveExt); err == nil {
		return outcome.Errorf(outcome.Refused, "copy refused: %s already holds an archive named %s%s", redact.URL(r.o.Dest), name, layout.ArchiveExt)
	} else if unreachable(err) {
		return fmt.Errorf("copy: look at %s in %s: %w; nothing was copied", name+layout.ArchiveExt, redact.URL(r.o.Dest), err)
	}
	meta, err := readMetadata(ctx, r.destRoot, name+"/"+layout.FileMetadata)
	switch {
	case unreachable(err):
		return fmt.Errorf("copy: look at %s in %s: %w; nothing was copied", name, redact.URL(r.o.Dest), err)
	case err == nil && meta.ManifestSHA256 == r.src.meta.ManifestSHA256:
		r.rep.AlreadyThere, r.rep.Path = true, where
		return nil
	case err == nil:
		return outcome.Errorf(outcome.Refused, "copy refused: %s already holds a complete backup named %s with another manifest (sha256 %s, the source's is %s)", redact.URL(r.o.Dest), name, meta.ManifestSHA256, r.src.meta.ManifestSHA256)
	case !errors.Is(err, storage.ErrNotExist):
		return outcome.Errorf(outcome.Refused, "copy refused: %s already holds %s, whose metadata cannot be read: %v", redact.URL(r.o.Dest), name, err)
	}
	if r.destLocal {
		if _, err := os.Lstat(where); err == nil {
			return outcome.Errorf(outcome.Refused, "copy refused: an incomplete %s is in the way (remove it, e.g. prune --prune-incomplete)", where)
		}
	}
	return nil
}

// unreachable tells whether err is the destination failing to answer (or refusing access),
// rather than an answer about what it holds: a copy then fails as any run whose storage is
// down does, instead of being refused as if a backup of the name stood in its way.
func unreachable(err error) bool {
	switch storage.ErrorCode(err) {
	case storage.CodeTransient, storage.CodePermission, storage.CodeCanceled:
		return true
	}
	return false
}

// claim records the run (kind "copy"), so workers refuse its late tasks once it is over.
func (r *copyRun) claim(ctx context.Context) (context.Context, error) {
	rec := messages.RunRecord{ID: r.o.RunID, Kind: "copy", Started: r.start.UTC(), BackupDir: r.o.Dest,
		Staging: stagingLocation(r.o.Dest, r.o.RunID), Storage: redact.URL(r.o.Backup)}
	track, runCtx, err := r.c.track(ctx, rec, 0)
	if err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	r.track = track
	return runCtx, nil
}

// runTasks publishes the copy tasks and waits for all of them.
func (r *copyRun) runTasks(ctx context.Context) error {
	var first bool
	results, err := r.c.dispatch(ctx, r.o.RunID, r.plan.tasks, nil, func(res *messages.Result) {
		if !first {
			first = true
			halt(ctx, "copy")
		}
	})
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	for _, res := range results {
		r.rep.Written += res.Files - res.Reused
		r.rep.WrittenBytes += res.Bytes - res.ReusedBytes
		r.rep.Reused += res.Reused
		r.rep.ReusedBytes += res.ReusedBytes
	}
	r.rep.Reused += r.plan.present
	r.rep.ReusedBytes += r.plan.presentBytes
	r.countNew()
	return r.stage.Sweep()
}

// countNew counts the storage files the copy did not reuse, as a backup counts its own:
// every file its manifest lists was either reused or copied (the run fails otherwise), so
// what was written less the backup's own files would undercount a content several files
// share, which an object store receives once, and overcount by the fixtures and manifest.
func (r *copyRun) countNew() {
	if r.src.archive {
		r.rep.Copied, r.rep.Bytes = r.rep.Written, r.rep.WrittenBytes
		return
	}
	files := r.src.meta.Files
	if r.src.meta.Encryption != nil && r.plan.reusePlanned > 0 {
		r.rep.ReusedBytes = r.reusedPlain()
	}
	r.rep.Copied = max(files.Count-r.rep.Reused, 0)
	r.rep.Bytes = max(files.Bytes-r.rep.ReusedBytes, 0)
}

// reusedPlain is the bytes before encryption of the files an encrypted backup's copy
// reused, which its metadata's counts are in (the workers count the encrypted bytes). When
// the reuse was not as planned (a link that fell back to a copy) the reused files' own sizes
// are not known: the planned ones' average stands for them, with a warning.
func (r *copyRun) reusedPlain() int64 {
	if r.rep.Reused == r.plan.reusePlanned {
		return r.plan.reusePlain
	}
	r.log.Warn("copy: the files reused were not the ones planned; the reused bytes before encryption are estimated",
		"planned", r.plan.reusePlanned, "reused", r.rep.Reused)
	return r.plan.reusePlain / r.plan.reusePlanned * r.rep.Reused
}

// assemble writes the copy's metadata, last: the source's, with where it was copied from,
// where its files are in this destination, and what this copy transferred and reused. The
// manifest (SHA256SUMS, copied and checked like every file) is unchanged.
func (r *copyRun) assemble(ctx context.Context) error {
	if r.src.archive {
		return nil // an archive carries its own metadata, which a copy cannot change
	}
	meta := *r.src.meta
	meta.CopiedFrom = &layout.CopiedFrom{Source: redact.URL(r.o.Backup), Time: time.Now().UTC(), Run: r.o.RunID}
	files := &meta.Files
	if meta.BackupOptions.IncludeFiles {
		switch {
		case !r.destLocal:
			files.Store = layout.StoreObjects
		case files.Store == layout.StoreObjects:
			// The files come out of the object store under the paths the manifest lists,
			// escaped as the source stored them (NameEncoding stays: a restore unescapes).
			files.Store = ""
		}
	}
	if err := r.indexForObjects(ctx, &meta); err != nil {
		return err
	}
	files.Base = r.plan.base
	files.New = layout.FileCount{Files: r.rep.Copied, Bytes: r.rep.Bytes}
	files.Reused = layout.FileCount{Files: r.rep.Reused, Bytes: r.rep.ReusedBytes}
	data, err := meta.Marshal()
	if err != nil {
		return fmt.Errorf("copy: metadata: %w", err)
	}
	if err := writeObject(ctx, r.stage.Bucket(), layout.FileMetadata, data, layout.FileMode); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	return ctx.Err()
}

// publish makes the copy visible under the source's name: a local folder by one rename, an
// S3 one by server-side copies (metadata last); an archive by a link (local) or one
// server-side copy (S3), each visible only whole.
func (r *copyRun) publish(ctx context.Context) error {
	name := r.src.name
	var err error
	switch d := r.stage.(type) {
	case *localDestination:
		if err := d.bucket.RemoveAll(ctx, internalDir); err != nil {
			return fmt.Errorf("remove working files: %w", err)
		}
		halt(ctx, "publish")
		if r.src.archive {
			r.rep.Path, err = publishLocalArchive(d, name)
		} else {
			r.rep.Path, err = d.stage.PublishDirNamed(name)
		}
	case *s3Destination:
		if r.src.archive {
			r.rep.Path, err = publishS3Archive(ctx, d, name)
		} else {
			r.rep.Path, err = d.Publish(ctx, publishOptions{start: r.start, name: name})
		}
	default:
		err = fmt.Errorf("unknown destination %T", r.stage)
	}
	if err == nil {
		r.published = true
	}
	return err
}

// publishLocalArchive links the staged archive to its name (link(2) never replaces a file),
// then removes the staging folder.
func publishLocalArchive(d *localDestination, name string) (string, error) {
	staged := filepath.Join(d.stage.Path(), name)
	f, err := os.Open(staged)
	if err != nil {
		return "", err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return "", err
	}
	final := filepath.Join(d.backupDir, name)
	if err := os.Link(staged, final); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	if err := d.stage.Abort(); err != nil {
		return final, fmt.Errorf("published, but removing the staging folder failed: %w", err)
	}
	return final, nil
}

// publishS3Archive copies the staged archive to its name server-side, then removes the
// staging area.
func publishS3Archive(ctx context.Context, d *s3Destination, name string) (string, error) {
	if err := copyWithin(ctx, d.root, d.bucket, name, name); err != nil {
		return "", err
	}
	d.published = true
	if err := d.root.RemoveAll(ctx, d.staging); err != nil {
		return storage.Join(d.base, name), fmt.Errorf("published, but removing the staging area failed: %w", err)
	}
	return storage.Join(d.base, name), nil
}

// end records the outcome; a copy that failed leaves nothing: its staging area is removed
// (the objects it stored in an object store are collected by prune once no backup needs
// them).
func (r *copyRun) end(rep *CopyReport, err error) {
	path := ""
	if rep != nil {
		path = rep.Path
	}
	r.track.finish(redact.URL(path), err)
	if r.published || r.stage == nil || !r.track.owned() {
		return
	}
	if aerr := r.stage.Abort(); aerr != nil {
		r.log.Warn("remove staging area", "err", aerr)
	}
}

// close releases what the run opened.
func (r *copyRun) close() {
	if r.stage != nil {
		r.stage.Close()
	}
	if r.destRoot != nil {
		r.destRoot.Close()
	}
	if r.src != nil {
		r.src.close()
	}
}

// copySource is a complete backup being copied, its manifest verified.
type copySource struct {
	// location is the backup; parent its destination's root, where an object store is.
	location, parent, name string
	archive                bool
	// sealed is an encrypted archive (copied with its sidecar, without the key).
	sealed       bool
	root, bucket *storage.Bucket
	meta         *layout.Metadata
	// archiveSum is an archive's SHA-256, computed while its entries were checked.
	archiveSum string
}

func (s *copySource) close() {
	if s.bucket != nil {
		s.bucket.Close()
	}
	if s.root != nil {
		s.root.Close()
	}
}

// openCopySource opens the backup at loc and verifies it before anything is copied: a
// folder must have complete metadata whose manifest_sha256 is the SHA-256 of its
// SHA256SUMS; an archive is read through once, each entry checked against its SHA256SUMS.
func openCopySource(ctx context.Context, loc string) (_ *copySource, err error) {
	s := &copySource{location: strings.TrimSuffix(loc, "/")}
	if storage.IsS3(loc) {
		if s.parent, s.name, err = splitLocation(loc); err != nil {
			return nil, outcome.Errorf(outcome.Usage, "copy: %w", err)
		}
	} else {
		s.parent, s.name = filepath.Dir(s.location), filepath.Base(s.location)
	}
	if !layout.IsBackupName(s.name) {
		return nil, outcome.Errorf(outcome.Usage, "copy: %s is not named like a backup (backup_YYYYMMDD_HHMMSS, or .tar.gz)", redact.URL(loc))
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.root, err = storage.Open(ctx, s.parent); err != nil {
		return nil, fmt.Errorf("copy: source %s: %w", redact.URL(loc), err)
	}
	s.archive = strings.HasSuffix(s.name, layout.ArchiveExt)
	if strings.HasSuffix(s.name, layout.EncryptedExt) {
		s.archive, s.sealed = true, true
		if s.meta, s.archiveSum, err = verifySealedSource(ctx, s.root, s.name); err != nil {
			return nil, fmt.Errorf("copy: source %s: %w", redact.URL(loc), err)
		}
		return s, nil
	}
	if s.archive {
		if s.meta, s.archiveSum, err = verifyArchiveSource(ctx, s.root, s.name); err != nil {
			return nil, fmt.Errorf("copy: source %s: %w", redact.URL(loc), err)
		}
		return s, nil
	}
	if s.bucket, err = storage.Open(ctx, s.location); err != nil {
		return nil, fmt.Errorf("copy: source %s: %w", redact.URL(loc), err)
	}
	if n, err := countUnder(ctx, s.bucket, "", 1); err != nil {
		return nil, fmt.Errorf("copy: source %s: %w", redact.URL(loc), err)
	} else if n == 0 {
		return nil, outcome.Errorf(outcome.Usage, "copy: source %s: no such backup", redact.URL(loc))
	}
	if s.meta, err = verifyFolderSource(ctx, s.bucket); err != nil {
		return nil, fmt.Errorf("copy: source %s: %w", redact.URL(loc), err)
	}
	return s, nil
}

// verifyFolderSource refuses an incomplete backup folder or one whose manifest is not the
// one its metadata vouches for.
func verifyFolderSource(ctx context.Context, b *storage.Bucket) (*layout.Metadata, error) {
	meta, err := readMetadata(ctx, b, layout.FileMetadata)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, outcome.Errorf(outcome.Refused, "refused: an incomplete backup (no %s)", layout.FileMetadata)
	}
	if err != nil {
		return nil, outcome.Errorf(outcome.Refused, "refused: %w", err)
	}
	if meta.Status != layout.StatusComplete || meta.ManifestSHA256 == "" {
		return nil, outcome.Errorf(outcome.Refused, "refused: its metadata has status %q and manifest_sha256 %q: not a complete backup whose manifest can be checked", meta.Status, meta.ManifestSHA256)
	}
	rc, _, err := b.Open(ctx, layout.FileSums)
	if err != nil {
		return nil, outcome.Errorf(outcome.Refused, "refused: read %s: %w", layout.FileSums, err)
	}
	defer rc.Close()
	var files int64
	top := map[string]bool{} // the few paths outside files/: fixtures, the index, restore.sh
	got, err := layout.HashSums(rc, func(p, _ string) error {
		if strings.HasPrefix(p, layout.FilesDir+"/") {
			files++
		} else {
			top[p] = true
		}
		return nil
	})
	if err != nil {
		return nil, outcome.Errorf(outcome.Refused, "refused: %w", err)
	}
	if got != meta.ManifestSHA256 {
		return nil, outcome.Errorf(outcome.Refused, "refused: %s has sha256 %s but the metadata's manifest_sha256 is %s (corrupt or tampered)", layout.FileSums, got, meta.ManifestSHA256)
	}
	if err := manifestCovers(meta, top, files); err != nil {
		return nil, outcome.Errorf(outcome.Refused, "refused: %w", err)
	}
	return meta, nil
}

// manifestCovers checks that SHA256SUMS lists what the metadata says the backup holds: every
// fixture (as stored: NAME or, encrypted, NAME.age) and as many files. A manifest cut short
// with its sum updated in the metadata would otherwise be copied, and published, as complete.
func manifestCovers(meta *layout.Metadata, top map[string]bool, files int64) error {
	for _, m := range meta.Models {
		if !top[m.File] && !top[m.File+layout.EncryptedExt] {
			return fmt.Errorf("%s holds %s (%s) but %s does not list it: an incomplete backup", layout.FileMetadata, m.File, m.Label, layout.FileSums)
		}
	}
	if files != meta.Files.Count {
		return fmt.Errorf("%s lists %d files under %s/ but %s says %d: an incomplete backup", layout.FileSums, files, layout.FilesDir, layout.FileMetadata, meta.Files.Count)
	}
	return nil
}
