package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// RestoreOptions are a restore's settings.
type RestoreOptions struct {
	// Source is a backup folder or a .tar.gz.
	Source      string
	DatabaseURL string
	StorageURL  string
	SkipDB      bool
	SkipFiles   bool
	// Models restores a subset (labels in any case); empty means every model in the backup.
	Models []string
	// Merge upserts by pk (loaddata's behaviour) instead of replacing the models' rows.
	Merge bool
	// Jobs > 1 loads a PostgreSQL database over that many connections, into empty tables only
	// (see database.LoadOptions.Jobs).
	Jobs int
	// DryRun stops after every check, with the plan, and changes nothing.
	DryRun bool
	// Confirm is asked with the plan before anything changes; false (or an error) changes
	// nothing. Nil means go ahead (--force).
	Confirm func(*RestorePlan) (bool, error)
	// TempDir is where an archive is unpacked (default: the system's temporary folder).
	TempDir string
	// FilesPerTask bounds one restore-prefix task (default 2000).
	FilesPerTask int
	// HashWorkers hash files in parallel during the checks (default 4).
	HashWorkers int
	RunID       string
	// Progress, if set, is told the work planned and done (rows, file bytes).
	Progress Progress
	// LockTimeout bounds every wait for another session's lock: the checks, the row counts
	// and the load (database.DefaultLockTimeout when 0).
	LockTimeout time.Duration
	// RequireChecksums refuses a backup without SHA256SUMS even when the Python command wrote
	// it (a backup this tool wrote is always refused without one).
	RequireChecksums bool
	// Identities decrypt an encrypted backup (--identity); Passphrase opens a passphrase
	// backup's key instead. Neither ever leaves this process.
	Identities *encryption.Identities
	Passphrase string
	// Select, if set, restores only the selected rows and what belongs to them, merged into
	// the live database (see SelectOptions).
	Select *SelectOptions
	// EarlySums, if set, are the fixtures' hashes that StartEarlySums began before the
	// restore: the check before the load takes them instead of hashing those files again.
	EarlySums *EarlySums
	// Target, if set, is the target database at DatabaseURL, opened with LockTimeout and
	// its schema already checked for every model the restore may load (by the preflight):
	// a whole restore loads over it instead of opening and checking its own, and closes it.
	Target *database.DB

	// silence is the coordinator's stall timeout, for the target's connections.
	silence time.Duration
	// lostLock stops the restore when a lock of its target is taken from it (objectlock).
	lostLock func(error)
}

// PlanModel is one model a restore will replace.
type PlanModel struct {
	Label string
	File  string
	// Rows in the backup; Current in the target database now.
	Rows, Current int64
}

// RestorePlan is what a restore will change, known after every check has passed.
type RestorePlan struct {
	Backup   string
	Metadata *layout.Metadata
	Database string
	Models   []PlanModel
	Merge    bool
	Storage  string
	Files    int64
	Bytes    int64
	// Folders is the recorded folders (empty, or with permissions of their own) a whole
	// restore into a local storage makes or gives their permissions (see planFolders).
	Folders int
	// Owner is the user and group ("uid:gid") the files and folders a restore makes in a
	// local storage are given: the storage folder's, when the restore runs as root and that
	// folder is another user's (see storage.Owner); empty otherwise.
	Owner    string
	Warnings []string
	// Subset is the graph of a restore of selected rows (nil otherwise).
	Subset *SubsetPlan
	// Migrations compares the backup's recorded Django migrations with the target's (nil
	// when no database is restored).
	Migrations *database.MigrationCheck
	// Space is the free-space check of a local storage folder (nil: S3, no files, or files
	// staged in the storage already).
	Space *SpaceCheck
	// space is what the planned files take in a local storage folder (see checkRestoreSpace).
	space *spaceTally
	// verify is the fixtures' checksum check when the load runs it (see deferFixtureSums).
	verify func(context.Context) error
	// pass is the check's hashes of what the load reads (see loadOptions).
	pass *fixturePass
}

// RestoreReport is a finished (or dry) restore.
type RestoreReport struct {
	RunID    string
	Plan     *RestorePlan
	DryRun   bool
	Loaded   []database.LoadedModel
	Files    int64
	Bytes    int64
	Failed   int64
	Failures []string
	// Stopped is why the file copies ended before every task finished (a task failed for
	// good: a full disk, say; the run stalled or was interrupted), empty when they all
	// finished. Files and Bytes then count the files known to be in place: the finished
	// tasks', and those the failed task put in place before it failed. Unfinished is the
	// planned files not counted as restored or failed. FilesAtLeast: more may be in place
	// than counted (tasks still running then, or an earlier attempt of the failed task), and
	// Unfinished is at most that many.
	Stopped      string
	Unfinished   int64
	FilesAtLeast bool
	Duration     time.Duration
	// TraceID is the run's trace (hex), empty when tracing is off.
	TraceID string
}

// ErrRefused is returned when Confirm says no.
var ErrRefused = outcome.Errorf(outcome.Refused, "restore refused: nothing was changed")

// PartialError is a restore whose database load succeeded but some files failed. First is
// the first failure (its path and cause), so the message alone names one.
type PartialError struct {
	Failed int64
	First  string
}

func (e *PartialError) Error() string {
	msg := fmt.Sprintf("restore partial: %d files could not be restored", e.Failed)
	if e.First != "" {
		msg += ", e.g. " + e.First
	}
	return msg + "; the database and every other file were restored"
}

// OutcomeStatus classifies a partial restore for outcome.Of (exit 3).
func (e *PartialError) OutcomeStatus() outcome.Status { return outcome.Partial }

// restoreSource is an opened backup: its folder (maybe unpacked from an archive), and the
// location of the destination root holding it (empty for an archive), whose object store
// holds an object-store backup's files.
type restoreSource struct {
	dir  string
	root string
	// private: dir is a folder this run unpacked or downloaded the backup into, which
	// nothing else reads and cleanup removes (never a backup folder itself).
	private bool
	cleanup func()
}

func openRestoreSource(ctx context.Context, src, tempDir string, keys archiveKeys) (*restoreSource, error) {
	if storage.IsS3(src) {
		return fetchS3Backup(ctx, src, tempDir, keys)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", src, err)
	}
	if fi.IsDir() {
		return &restoreSource{dir: src, root: filepath.Dir(filepath.Clean(src)), cleanup: func() {}}, nil
	}
	if encryption.IsEncryptedFile(src) {
		return openSealedLocal(ctx, src, tempDir, keys)
	}
	tmp, err := os.MkdirTemp(tempDir, "wnb-restore-")
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", src, err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	f, err := storage.OpenRegular(src)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("unpack %s: %w", src, err)
	}
	defer f.Close()
	top, err := archive.Extract(ctx, f, tmp)
	if errors.Is(err, archive.ErrNotArchive) {
		cleanup()
		return nil, outcome.Usagef("%s is neither a backup folder nor a backup archive (.tar.gz, .tar.zst or .tar): %w", src, err)
	}
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("unpack %s: %w", src, err)
	}
	return &restoreSource{dir: filepath.Join(tmp, top), private: true, cleanup: cleanup}, nil
}

// fetchS3Backup brings a backup stored on S3 into a private temporary folder: an archive is
// unpacked as it streams (refused whole if any entry is unsafe), a folder prefix is downloaded
// object by object. The restore then works on local files, which it checks before anything
// changes.
func fetchS3Backup(ctx context.Context, src, tempDir string, keys archiveKeys) (*restoreSource, error) {
	parent, name, err := splitLocation(src)
	if err != nil {
		return nil, err
	}
	b, err := storage.Open(ctx, parent)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	tmp, err := os.MkdirTemp(tempDir, "wnb-restore-")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	if strings.HasSuffix(name, layout.EncryptedExt) {
		return fetchSealedS3(ctx, b, src, name, tmp, keys)
	}
	if _, isArchive := layout.TrimArchiveExt(name); isArchive {
		r, _, err := b.Open(ctx, name)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("open %s: %w", src, err)
		}
		defer r.Close()
		top, err := archive.Extract(ctx, r, tmp)
		if errors.Is(err, archive.ErrNotArchive) {
			cleanup()
			return nil, outcome.Usagef("%s is not a backup archive (.tar.gz, .tar.zst or .tar): %w", src, err)
		}
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("unpack %s: %w", src, err)
		}
		return &restoreSource{dir: filepath.Join(tmp, top), private: true, cleanup: cleanup}, nil
	}
	dir := filepath.Join(tmp, name)
	local, err := storage.Open(ctx, tmp)
	if err == nil {
		defer local.Close()
		n := 0
		err = b.Walk(ctx, name+"/", func(o storage.Object) error {
			r, obj, err := b.Open(ctx, o.Key)
			if err != nil {
				return err
			}
			defer r.Close()
			n++
			_, err = local.Put(ctx, o.Key, r, obj)
			return err
		})
		if err == nil && n == 0 {
			err = fmt.Errorf("no backup at %s", src)
		}
	}
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	return &restoreSource{dir: dir, root: parent, private: true, cleanup: cleanup}, nil
}

// splitLocation splits "s3://bucket/prefix/backup_x?q" into "s3://bucket/prefix?q" and "backup_x".
func splitLocation(loc string) (parent, name string, err error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", "", fmt.Errorf("backup location %s: %w", redact.URL(loc), err)
	}
	p := strings.Trim(u.Path, "/")
	i := strings.LastIndexByte(p, '/')
	name = p[i+1:]
	if name == "" {
		return "", "", fmt.Errorf("backup location %s names no backup", redact.URL(loc))
	}
	u.Path = "/" + p[:max(i, 0)]
	return u.String(), name, nil
}

// Restore checks everything, asks, then loads the database in one transaction and restores the
// files through the queue. A failed check or a refusal changes nothing. The run is one trace.
func (c *Coordinator) Restore(ctx context.Context, o RestoreOptions) (*RestoreReport, error) {
	ctx, span := telemetry.StartRun(ctx, "restore")
	// A lock of the target that another restore takes over stops this one (lostLock).
	ctx, lost := context.WithCancelCause(ctx)
	defer lost(nil)
	o.lostLock = lost
	rep, err := c.restore(ctx, o)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("restore stopped: %w (%w)", cause, err)
	}
	oc, took := outcome.Of(err), time.Duration(0)
	switch {
	case rep != nil && rep.DryRun && err == nil:
		oc = outcome.For(outcome.DryRun)
	case err == nil:
		took = rep.Duration
	}
	if rep != nil {
		rep.TraceID = telemetry.TraceID(ctx)
	}
	telemetry.EndRun(span, "restore", oc, took, err)
	return rep, err
}

func (c *Coordinator) restore(ctx context.Context, o RestoreOptions) (*RestoreReport, error) {
	start := time.Now()
	if err := o.withDefaults(start); err != nil {
		return nil, err
	}
	o.silence = c.StallTimeout
	rep := &RestoreReport{RunID: o.RunID, DryRun: o.DryRun}
	telemetry.Annotate(ctx, telemetry.KeyRun.String(o.RunID), attribute.Bool("wnb.dry_run", o.DryRun))
	release, err := layout.Hold(o.Source)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer release()
	src, err := openRestoreSource(ctx, o.Source, o.TempDir, archiveKeys{ids: o.Identities, passphrase: o.Passphrase})
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer src.cleanup()
	if err := RefuseTargetInsideBackup(src.dir, o); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if !o.DryRun {
		unlock, err := lockRestoreTarget(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		defer unlock()
	}
	if o.Select != nil {
		return c.restoreSelected(ctx, o, src, rep, start)
	}

	cctx, checkSpan := telemetry.Start(ctx, "restore.check")
	chk, err := c.checkRestore(cctx, src, o)
	telemetry.End(checkSpan, err)
	defer chk.close()
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	chk.plan.Backup = o.Source
	rep.Plan = chk.plan
	if err := checkJobsTarget(ctx, o, chk); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if o.DryRun {
		rep.Duration = time.Since(start)
		return rep, nil
	}
	if err := confirmRestore(o, chk.plan); err != nil {
		return nil, err
	}
	reportRestoreTotals(o, chk.plan)
	if chk.db != nil {
		if err := c.loadDatabase(ctx, o, chk, rep); err != nil {
			return nil, err
		}
	}
	if !o.SkipFiles && len(chk.tasks) > 0 {
		chk.dec.restoring()
		chk.work.restoring()
		if err := openFolders(o, chk.plan); err != nil {
			return rep, fmt.Errorf("restore: folders: %w", err)
		}
		fctx, filesSpan := telemetry.Start(ctx, "restore.files", telemetry.KeyFiles.Int64(chk.plan.Files))
		err := c.restoreFiles(fctx, o, chk.tasks, rep)
		filesSpan.SetAttributes(telemetry.KeyBytes.Int64(rep.Bytes), attribute.Int64("wnb.files_failed", rep.Failed))
		telemetry.End(filesSpan, err)
		if err != nil {
			return rep, fmt.Errorf("restore: files: %w", err)
		}
	}
	if err := restoreFolders(o, chk.plan); err != nil {
		return rep, fmt.Errorf("restore: folders: %w", err)
	}
	return finished(rep, start)
}

// finished ends a restore's report: its duration, and a PartialError when some files could
// not be restored.
func finished(rep *RestoreReport, start time.Time) (*RestoreReport, error) {
	rep.Duration = time.Since(start)
	if rep.Failed > 0 {
		pe := &PartialError{Failed: rep.Failed}
		if len(rep.Failures) > 0 {
			pe.First = rep.Failures[0]
		}
		return rep, pe
	}
	return rep, nil
}

// withDefaults refuses a restore of nothing and fills in the defaults.
func (o *RestoreOptions) withDefaults(start time.Time) error {
	if o.SkipDB && o.SkipFiles {
		return errors.New("restore: --skip-db and --skip-files leave nothing to restore")
	}
	if o.FilesPerTask <= 0 {
		o.FilesPerTask = 2000
	}
	o.HashWorkers = hashWorkers(*o)
	if o.RunID == "" {
		o.RunID = NewRunID(start)
	}
	return nil
}

// hashWorkers is o.HashWorkers, or its default.
func hashWorkers(o RestoreOptions) int {
	if o.HashWorkers <= 0 {
		return 4
	}
	return o.HashWorkers
}

// RefuseTargetInsideBackup refuses a restore whose SQLite file or storage folder lies inside
// the backup folder it reads (symlinks resolved): it would restore into the backup itself,
// which then no longer verifies. It runs before the target is opened, so nothing is created;
// the command line calls it before its preflight too. The error is a usage error naming the
// flag (--database or --storage).
func RefuseTargetInsideBackup(backup string, o RestoreOptions) error {
	root, err := resolvePath(backup)
	if err != nil {
		return fmt.Errorf("resolve backup %s: %w", backup, err)
	}
	if !o.SkipDB {
		if src, err := database.ParseURL(o.DatabaseURL); err == nil && src.Engine == database.SQLite {
			if in, err := inside(root, src.DSN); err != nil || in {
				return targetInBackup("--database", src.Redacted, backup, err)
			}
		}
	}
	if !o.SkipFiles && !storage.IsS3(o.StorageURL) {
		p := storage.LocalPath(o.StorageURL)
		if in, err := inside(root, p); err != nil || in {
			return targetInBackup("--storage", p, backup, err)
		}
	}
	return nil
}

// targetInBackup is the refusal of a target inside the backup (or one that cannot be resolved).
func targetInBackup(flag, target, backup string, err error) error {
	if err != nil {
		return outcome.Usagef("%s %s: cannot tell whether it lies inside the backup %s: %w; nothing was changed", flag, target, backup, err)
	}
	return outcome.Usagef("%s %s lies inside the backup %s: the restore would write into the backup it reads; give the platform's own %s (nothing was changed)",
		flag, target, backup, strings.TrimPrefix(flag, "--"))
}

// inside reports whether path p, resolved like root, is root or lies under it.
func inside(root, p string) (bool, error) {
	rp, err := resolvePath(p)
	if err != nil {
		return false, err
	}
	rel, err := filepath.Rel(root, rp)
	if err != nil {
		return false, nil
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))), nil
}

// resolvePath makes p absolute and resolves the symlinks of its longest existing prefix; the
// part that does not exist yet (a target the restore would create) is appended as it is.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for cur := abs; ; cur = filepath.Dir(cur) {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			slices.Reverse(rest)
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, os.ErrNotExist) || cur == filepath.Dir(cur) {
			return "", err
		}
		rest = append(rest, filepath.Base(cur))
	}
}

// confirmRestore asks Confirm, if set, with the plan: ErrRefused when it says no.
func confirmRestore(o RestoreOptions, plan *RestorePlan) error {
	if o.Confirm == nil {
		return nil
	}
	ok, err := o.Confirm(plan)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !ok {
		return ErrRefused
	}
	return nil
}

// reportRestoreTotals tells the progress display the work planned.
func reportRestoreTotals(o RestoreOptions, plan *RestorePlan) {
	if o.Progress == nil {
		return
	}
	var rows int64
	for _, m := range plan.Models {
		rows += m.Rows
	}
	o.Progress.Total(progress.Rows, rows)
	if !o.SkipFiles {
		o.Progress.Total(progress.Files, plan.Bytes)
	}
}

// loadDatabase loads the checked fixtures: in one transaction, or with Jobs > 1 over several
// connections, table by table.
func (c *Coordinator) loadDatabase(ctx context.Context, o RestoreOptions, chk *restoreCheck, rep *RestoreReport) error {
	lctx, loadSpan := telemetry.Start(ctx, "database.load", attribute.Int("wnb.models", len(chk.fixtures)), attribute.Bool("wnb.merge", o.Merge), attribute.Int("wnb.jobs", o.Jobs))
	wctx, fixtures, stopWatch := watchLoad(lctx, weighFixtures(chk), c.StallTimeout)
	loaded, err := chk.db.Load(wctx, fixtures, loadOptions(o, chk, fixtures))
	if cause := context.Cause(wctx); errors.Is(cause, ErrLoadStalled) {
		err = cause
	}
	stopWatch()
	var rows int64
	for _, m := range loaded {
		rows += m.Rows
	}
	loadSpan.SetAttributes(telemetry.KeyRows.Int64(rows))
	telemetry.End(loadSpan, err)
	if err != nil {
		return loadFailed(err)
	}
	rep.Loaded = loaded
	if o.Progress != nil {
		o.Progress.Add(progress.Rows, rows)
	}
	c.log.Info("database restored", "run", o.RunID, "models", len(loaded), "jobs", max(o.Jobs, 1))
	return nil
}

// restoreCheck is what the checks of a restore found: the plan, the fixtures to load, the
// tasks that copy the files (their key lists in work), and the open target database (nil
// with SkipDB), which close releases with the work folder.
type restoreCheck struct {
	plan     *RestorePlan
	fixtures []database.LoadFixture
	tasks    []*messages.Task
	work     *restoreWork
	db       *database.DB
	// dec is an encrypted backup's keys and plaintext manifest (nil: not encrypted).
	dec *restoreDecrypt
}

func (k *restoreCheck) close() {
	if k.db != nil {
		k.db.Close()
	}
	k.dec.close()
	k.work.close()
}

// readCompleteMetadata reads the metadata of the backup in dir, which must be complete.
func readCompleteMetadata(dir string) (*layout.Metadata, error) {
	meta, err := layout.ReadMetadata(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not a complete backup: %w", dir, err)
	}
	if meta.FormatVersion >= 1 && meta.Status != layout.StatusComplete {
		return nil, fmt.Errorf("backup %s has status %q, not %q", dir, meta.Status, layout.StatusComplete)
	}
	return meta, nil
}

// checkRestore runs every check of a restore before anything changes: metadata, checksums of
// every file the restore will use, fixtures that parse, and the target's schema. The result
// is never nil, so its database can be closed whatever failed.
func (c *Coordinator) checkRestore(ctx context.Context, src *restoreSource, o RestoreOptions) (*restoreCheck, error) {
	chk := &restoreCheck{}
	dir := src.dir
	meta, err := readCompleteMetadata(dir)
	if err != nil {
		return chk, err
	}
	chk.plan = &RestorePlan{Metadata: meta, Merge: o.Merge}
	ids, err := restoreIdentities(dir, redact.URL(o.Source), meta, o)
	if err != nil {
		return chk, err
	}
	var models []platform.Model
	if !o.SkipDB {
		if models, err = selectModels(dir, meta, o.Models); err != nil {
			return chk, err
		}
	}
	if chk.work, err = newRestoreWork(ctx, o.TempDir); err != nil {
		return chk, err
	}
	sums, err := openSums(dir, chk.work.spill())
	if err != nil {
		return chk, err
	}
	defer sums.Close()
	if err := checkManifest(meta, sums, o.RequireChecksums); err != nil {
		return chk, err
	}
	if ids != nil {
		if chk.dec, err = openDecrypt(ctx, dir, redact.URL(o.Source), meta, sums, ids, chk.work); err != nil {
			return chk, err
		}
	}
	if chk.tasks, err = checkBackupFiles(ctx, src, sums, models, o, chk.work, chk.plan, chk.dec); err != nil {
		return chk, err
	}
	if err := refuseNothingToRestore(o, models, chk.plan.Files); err != nil {
		return chk, err
	}
	if err := checkRestoreSpace(chk.plan, (chk.dec != nil && chk.dec.stage != nil) || chk.work.stage != nil); err != nil {
		return chk, err
	}
	planFolders(o, chk.plan)
	planOwner(o, chk.plan)
	if len(o.Models) > 0 && chk.plan.Files > 0 {
		// --models narrows the database only: say that the whole storage is written too.
		chk.plan.Warnings = append(chk.plan.Warnings, fmt.Sprintf("--models restores only those tables, but all %d storage files of the backup are restored too, over the storage's copies: add --skip-files to leave the storage as it is", chk.plan.Files))
	}
	if chk.fixtures, err = readFixtures(fixtureDir(dir, chk.dec), models, meta, sums != nil && !o.DryRun, chk.plan); err != nil {
		return chk, err
	}
	// A files-only backup needs no database: the target's is neither opened nor checked.
	if len(models) > 0 {
		if chk.db, err = checkTargetDatabase(ctx, o, models, chk.plan); err != nil {
			return chk, err
		}
	}
	if !o.SkipFiles {
		b, err := storage.Open(ctx, o.StorageURL)
		if err != nil {
			return chk, err
		}
		b.Close()
		chk.plan.Storage = b.String()
	}
	return chk, nil
}

// refuseNothingToRestore refuses, as a usage error, a restore that would restore nothing: --skip-db
// on a backup without storage files (a database-only backup), --skip-files on one without
// fixtures (a files-only backup), or a backup holding neither. Reporting "0 restored" with
// success would hide that the operator restored nothing.
func refuseNothingToRestore(o RestoreOptions, models []platform.Model, files int64) error {
	noFiles := !o.SkipFiles && files == 0
	switch {
	case o.SkipDB && noFiles:
		return outcome.Usagef("--skip-db: the backup holds no storage files (a database-only backup?): nothing to restore; nothing was changed")
	case o.SkipFiles && len(models) == 0:
		return outcome.Usagef("--skip-files: the backup holds no database fixtures (a files-only backup?): nothing to restore; nothing was changed")
	case !o.SkipDB && len(models) == 0 && noFiles:
		return outcome.Usagef("the backup holds neither database fixtures nor storage files: nothing to restore; nothing was changed")
	}
	return nil
}

// selectModels picks the fixtures to load, in dependency order: every model in the backup,
// or the --models subset, each of which must be in it.
func selectModels(dir string, meta *layout.Metadata, labels []string) ([]platform.Model, error) {
	inBackup, err := backupModels(dir, meta)
	if err != nil || len(labels) == 0 {
		return inBackup, err
	}
	sel, err := platform.Default.Select(labels)
	if err != nil {
		return nil, fmt.Errorf("--models: %w", err)
	}
	var want []platform.Model
	for _, m := range sel {
		if !slices.ContainsFunc(inBackup, func(b platform.Model) bool { return b.Label == m.Label }) {
			return nil, fmt.Errorf("--models: %s is not in this backup", m.Label)
		}
		want = append(want, m)
	}
	return want, nil
}

// checkBackupFiles plans the files the restore will copy (key lists written as it goes) and
// checks the checksum of everything it will read: the models' fixtures and those files (an
// object-store backup's objects are checked for presence and size here, for their sums by the
// workers as they copy).
func checkBackupFiles(ctx context.Context, src *restoreSource, sums *layout.Sums, models []platform.Model, o RestoreOptions, work *restoreWork, plan *RestorePlan, dec *restoreDecrypt) ([]*messages.Task, error) {
	var fixtures []string
	for _, m := range models {
		fixtures = append(fixtures, storedFixture(plan.Metadata, m))
	}
	var err error
	switch {
	case dec != nil:
		if err := decryptFixtures(ctx, src.dir, sums, plan.Metadata, fixtures, dec, o.HashWorkers); err != nil {
			return nil, err
		}
	case sums != nil && deferFixtureSums(o):
		// Listed now; hashed by the load, alongside its COPYs (see deferFixtureSums).
		if plan.verify, plan.pass, err = sumsCheck(src.dir, sums, plan.Metadata, fixtures, o.HashWorkers, o.EarlySums); err != nil {
			return nil, err
		}
	case sums != nil:
		if err := checkSums(ctx, src.dir, sums, plan.Metadata, fixtures, o.HashWorkers); err != nil {
			return nil, err
		}
	}
	meta := plan.Metadata
	if !o.SkipFiles {
		if dec != nil && !o.DryRun {
			if dec.stage, err = newRestoreStage(ctx, o.StorageURL, meta.Files.Bytes); err != nil {
				return nil, err
			}
		}
		if meta.Files.Store == layout.StoreObjects {
			if src.root == "" {
				return nil, fmt.Errorf("%s says the files are in the object store of the backup's destination, which is unknown here", layout.FileMetadata)
			}
			if dec == nil && !o.DryRun {
				if work.stage, err = newRestoreStage(ctx, o.StorageURL, meta.Files.Bytes); err != nil {
					return nil, err
				}
			}
			pl := newRestorePlanner(o, work, src.root, "", meta, plan)
			err = planObjectFiles(ctx, src.dir, src.root, sums, meta, pl, dec)
			return pl.tasks, err
		}
		pl := newRestorePlanner(o, work, src.dir, layout.FilesDir+"/", meta, plan)
		pl.linkFrom(src, dec)
		if err = planFolderFiles(ctx, src.dir, sums, pl, meta.Files.NameEncoding, dec); err != nil {
			return nil, err
		}
		if err := pl.syncLinked(src.dir); err != nil {
			return nil, err
		}
		if sums == nil {
			plan.Warnings = append(plan.Warnings, "backup has no SHA256SUMS (written by the Python command?): its integrity cannot be verified")
		}
		return pl.tasks, nil
	}
	if sums == nil {
		plan.Warnings = append(plan.Warnings, "backup has no SHA256SUMS (written by the Python command?): its integrity cannot be verified")
	}
	return nil, nil
}

// checkManifest refuses a backup whose checksums could be switched off by deleting or
// editing SHA256SUMS: metadata that says this tool wrote the backup ties SHA256SUMS to it by
// manifest_sha256. Only a Python backup (no such mark) goes without, unless required.
func checkManifest(meta *layout.Metadata, sums *layout.Sums, require bool) error {
	switch {
	case sums == nil && meta.WrittenByTool():
		return fmt.Errorf("%s is missing, but %s says webnovel-backup wrote this backup (format_version %d): its files cannot be verified, so nothing is restored",
			layout.FileSums, layout.FileMetadata, meta.FormatVersion)
	case sums == nil && require:
		return outcome.Usagef("backup has no %s (written by the Python command) and --require-checksums is set: nothing was changed", layout.FileSums)
	case sums == nil:
		return nil
	case !meta.WrittenByTool():
		return nil
	case meta.ManifestSHA256 == "":
		return fmt.Errorf("%s has no manifest_sha256: %s is not tied to the backup, so nothing is restored", layout.FileMetadata, layout.FileSums)
	case meta.ManifestSHA256 != sums.Manifest:
		return fmt.Errorf("%s was changed after the backup: its SHA-256 is %s, %s's manifest_sha256 says %s",
			layout.FileSums, sums.Manifest, layout.FileMetadata, meta.ManifestSHA256)
	}
	return nil
}

// readFixtures checks that the fixtures parse and hold what their names say, and plans their
// rows. When SHA256SUMS proved them to be the files this tool wrote and counted (verified),
// the load's own parse (one transaction: a bad object rolls everything back) is enough, and
// the counts come from the metadata; a dry run and an unverifiable backup are read in full.
func readFixtures(dir string, models []platform.Model, meta *layout.Metadata, verified bool, plan *RestorePlan) ([]database.LoadFixture, error) {
	recorded := map[string]int64{}
	if verified && meta.FormatVersion >= 1 {
		for _, e := range meta.Models {
			recorded[e.Label] = e.Rows
		}
	}
	var fixtures []database.LoadFixture
	for _, m := range models {
		p := filepath.Join(dir, m.FixtureName())
		n, ok := recorded[m.Label]
		if !ok {
			var err error
			if n, err = countFixture(p, m.Label); err != nil {
				return nil, err
			}
		}
		plan.Models = append(plan.Models, PlanModel{Label: m.Label, File: m.FixtureName(), Rows: n})
		fixtures = append(fixtures, database.LoadFixture{Model: m, Open: func() (io.ReadCloser, error) { return storage.OpenRegular(p) }})
	}
	return fixtures, nil
}

// checkTargetDatabase opens the target (or takes o.Target, whose schema was checked) and
// checks it has the platform's schema, recording the rows it holds now in the plan. The
// database is returned open even when a check fails.
func checkTargetDatabase(ctx context.Context, o RestoreOptions, models []platform.Model, plan *RestorePlan) (*database.DB, error) {
	db, err := openCheckedTarget(ctx, o, models, plan)
	if err != nil {
		return db, err
	}
	if err := checkTargetPermissions(ctx, db, plan.Metadata, models); err != nil {
		return db, err
	}
	counts, err := db.CountRows(ctx, models)
	if err != nil {
		return db, err
	}
	for i := range plan.Models {
		plan.Models[i].Current = counts[plan.Models[i].Label]
	}
	return db, nil
}

// openCheckedTarget opens the target database (or takes o.Target, whose schema the
// preflight checked) and checks that it is migrated as far as the backup and has the
// platform's schema for models. The DB is returned with an error too, when it was opened,
// for the caller to close.
func openCheckedTarget(ctx context.Context, o RestoreOptions, models []platform.Model, plan *RestorePlan) (*database.DB, error) {
	db := o.Target
	if db == nil {
		var err error
		if db, err = database.OpenWith(ctx, o.DatabaseURL, database.Options{LockTimeout: o.LockTimeout, Silence: database.SilenceFor(o.silence)}); err != nil {
			return nil, err
		}
	}
	plan.Database = db.Source().Redacted
	if err := checkTargetMigrations(ctx, db, plan); err != nil {
		return db, err
	}
	if o.Target == nil {
		if _, err := db.CheckSchema(ctx, models); err != nil {
			return db, fmt.Errorf("target database %s does not have the platform's schema (run `manage.py migrate` first): %w", plan.Database, err)
		}
	}
	return db, nil
}

// backupModels lists the models a backup holds, in dependency order: from the metadata, or,
// for a Python backup, from the fixture files present.
func backupModels(dir string, meta *layout.Metadata) ([]platform.Model, error) {
	var out []platform.Model
	if len(meta.Models) > 0 {
		for _, e := range meta.Models {
			m, ok := platform.Default.Model(e.Label)
			if !ok {
				return nil, fmt.Errorf("backup metadata lists unknown model %q", e.Label)
			}
			if e.File != storedFixture(meta, m) {
				return nil, fmt.Errorf("backup metadata: model %s has file %q, want %q", e.Label, e.File, storedFixture(meta, m))
			}
		}
	}
	for _, m := range platform.Default.Models {
		listed := len(meta.Models) == 0
		for _, e := range meta.Models {
			if strings.EqualFold(e.Label, m.Label) {
				listed = true
			}
		}
		if !listed {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, storedFixture(meta, m))); err != nil {
			if len(meta.Models) == 0 && errors.Is(err, os.ErrNotExist) {
				continue // a Python backup of a model subset
			}
			return nil, fmt.Errorf("backup is missing %s: %w", storedFixture(meta, m), err)
		}
		out = append(out, m)
	}
	return out, nil
}

// openSums opens SHA256SUMS for streaming (see layout.OpenSums); nil without error when the
// backup has none.
func openSums(dir, spill string) (*layout.Sums, error) {
	sums, err := layout.OpenSums(filepath.Join(dir, layout.FileSums), spill)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", layout.FileSums, err)
	}
	return sums, nil
}

// restoredKey is the storage key a file of the backup is restored to: its path under files/,
// unescaped when the backup stored names escaped (names is layout.NamesEscaped).
func restoredKey(rel, names string) (string, error) {
	key := strings.TrimPrefix(rel, layout.FilesDir+"/")
	if names != layout.NamesEscaped {
		return key, nil
	}
	key, err := storage.UnescapeKey(key)
	if err == nil {
		err = storage.CheckKey(key)
	}
	if err != nil {
		return "", fmt.Errorf("%s: the backup stores names escaped, and this one is not: %w", storage.QuoteKey(rel), err)
	}
	return key, nil
}

// checkSums hashes the named files in parallel and compares them with SHA256SUMS and the
// metadata's per-model checksums, stopping at the first that does not match.
// Only paths outside files/ are looked up (sums.Top): the fixtures and the file index.
func checkSums(ctx context.Context, dir string, sums *layout.Sums, meta *layout.Metadata, paths []string, workers int) error {
	check, _, err := sumsCheck(dir, sums, meta, paths, workers, nil)
	if err != nil {
		return err
	}
	return check(ctx)
}

// countFixture reads a whole fixture, checking it parses and holds only its model's objects.
func countFixture(p, label string) (int64, error) {
	f, err := storage.OpenRegular(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := fixture.NewReader(f)
	var n int64
	for {
		obj, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%s: %w", filepath.Base(p), err)
		}
		if !strings.EqualFold(obj.Model, label) {
			return n, fmt.Errorf("%s: object %d is a %s, not a %s", filepath.Base(p), n, obj.Model, label)
		}
		n++
	}
}

// restoreFiles copies the backup's files into the platform storage through the queue: the
// tasks the checks planned, whose key lists are written already.
func (c *Coordinator) restoreFiles(ctx context.Context, o RestoreOptions, tasks []*messages.Task, rep *RestoreReport) error {
	// A second of slack: a file system may keep coarser change times than the clock.
	started := time.Now().Add(-time.Second)
	if err := ensureLocalRoot(o.StorageURL); err != nil {
		return err
	}
	meter, stop := c.watchFiles(ctx, o.RunID, o.Progress)
	defer stop()
	results, err := c.dispatch(ctx, o.RunID, tasks, nil, func(r *messages.Result) {
		meter.finish(r.Task, r.Bytes)
	})
	if err != nil {
		countStopped(rep, tasks, results, err)
		return err
	}
	// A worker killed while writing leaves its temporary file in the storage; the task was
	// redone by another, so the leftover is garbage (local folders: S3 uploads are atomic).
	// Only what this restore made is taken: a file of that name older than the run is the
	// platform's, and stays.
	if !storage.IsS3(o.StorageURL) {
		removed, err := removeTempFiles(storage.LocalPath(o.StorageURL), started)
		for _, p := range removed {
			c.log.Info("removed a temporary file a stopped worker of this restore left", "file", p)
		}
		if err != nil {
			c.log.Warn("remove leftover temporary files from the storage", "err", err)
		}
	}
	countRestored(rep, results)
	return nil
}

// countRestored adds the finished tasks' results to the report.
func countRestored(rep *RestoreReport, results map[string]*messages.Result) {
	for _, id := range slices.Sorted(maps.Keys(results)) {
		r := results[id]
		rep.Files += r.Files
		rep.Bytes += r.Bytes
		rep.Failed += r.Failed
		rep.Failures = append(rep.Failures, r.Failures...)
	}
}

// countStopped counts, when the file copies stopped (err) before every task finished, what is
// known to be in the storage: the finished tasks' files, and those the failed task's last
// attempt put in place before it failed (its final result says). The counts are exact only
// when that task was the last one unfinished and failed at its first attempt: a task still
// running, or an earlier attempt that got further, may have written more.
func countStopped(rep *RestoreReport, tasks []*messages.Task, results map[string]*messages.Result, err error) {
	countRestored(rep, results)
	rep.Stopped = redact.Text(err.Error())
	var failed *messages.Result
	if te := (*TaskError)(nil); errors.As(err, &te) {
		failed = te.Result
	}
	open := 0
	for _, t := range tasks {
		if results[t.ID] == nil {
			open++
			rep.Unfinished += int64(t.Copy.Keys)
		}
	}
	if failed != nil {
		rep.Files += failed.Files
		rep.Bytes += failed.Bytes
		rep.Unfinished -= failed.Files
	}
	rep.FilesAtLeast = failed == nil || failed.Attempt > 1 || open > 1
}

func topName(key string) string {
	if p := strings.TrimSuffix(topPrefix(key), "/"); p != "" {
		return p
	}
	return "root"
}

// ensureLocalRoot creates a local storage root that does not exist yet (a fresh MEDIA_ROOT).
func ensureLocalRoot(u string) error {
	p := storage.LocalPath(u)
	if strings.Contains(p, "://") {
		return nil
	}
	root, rel, err := openNearestFolder(p)
	if err != nil {
		return os.MkdirAll(p, 0o755) // which meets, and reports, the same trouble
	}
	defer root.Close()
	if rel == "" {
		return nil
	}
	// Made as the folder above it is owned (restored files take the storage folder's owner).
	return storage.OwnerOf(root).MkdirAll(root, rel, 0o755)
}

// openNearestFolder opens the nearest folder at or above the local path p that exists (p
// itself, or the folder a missing p is made in), and returns p relative to it ("" when p
// exists).
func openNearestFolder(p string) (root *os.Root, rel string, err error) {
	above, rel := nearestFolder(p)
	root, err = os.OpenRoot(above)
	return root, rel, err
}

// nearestFolder returns the nearest folder at or above the local path p that exists, and p
// relative to it ("" when p exists).
func nearestFolder(p string) (above, rel string) {
	p = filepath.Clean(p)
	for above = p; ; above = filepath.Dir(above) {
		if _, err := os.Stat(above); err == nil || filepath.Dir(above) == above {
			break
		}
	}
	if rel, _ = filepath.Rel(above, p); rel == "." {
		rel = ""
	}
	return above, rel
}
