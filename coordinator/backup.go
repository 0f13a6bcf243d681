package coordinator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// ToolVersion is recorded in every backup's metadata.
var ToolVersion = "0.1.0"

// DefaultChunkRows is the most rows of one piece of a model's export task (see PieceBytes).
const DefaultChunkRows = 50000

// PieceBytes is the fixture bytes a piece of an export task is planned to hold: a worker
// reads the pieces of a model in parallel, each into memory, and writes them in order, so a
// piece is small enough for several to be held at once and large enough that its query's
// fixed cost does not count.
const PieceBytes = 4 << 20

// internalDir holds a run's working files inside its staging folder; it is removed before the
// backup is published.
const internalDir = ".wnb"

// BackupOptions are a backup's settings; the zero value of each field is a sensible default
// except DatabaseURL/StorageURL, which name what to back up.
type BackupOptions struct {
	DatabaseURL string
	StorageURL  string
	BackupDir   string
	SkipDB      bool
	SkipFiles   bool
	// Models selects a subset (labels in any case); empty means all.
	Models   []string
	Compress bool
	// Compression is the archive's compression with Compress: gzip (also when empty), zstd or
	// none (archive.ParseCompression).
	Compression string
	// Indent is the fixtures' --indent (0: one object per line).
	Indent int
	// ChunkRows bounds the rows of one piece of a model's export (DefaultChunkRows when 0):
	// larger tables are read in primary-key ranges, in parallel, into the one fixture.
	ChunkRows int
	// FilesPerTask and BytesPerTask bound one copy task (defaults 2000 files, 256 MiB).
	FilesPerTask int
	BytesPerTask int64
	// Workers is recorded in the metadata (the coordinator does not run tasks itself).
	Workers int
	// RunID is generated when empty.
	RunID string
	// Progress, if set, is told the work planned and done (rows, file bytes, archive bytes).
	Progress Progress
	// LockTimeout bounds every wait for another session's lock while the coordinator checks
	// the schema and plans in its snapshot (database.DefaultLockTimeout when 0).
	LockTimeout time.Duration
	// Resume finishes the run with this id, whose coordinator died: file copies already done
	// are kept; the database is exported again under a new snapshot (the old one died with its
	// coordinator). The other options are taken from the run's record.
	Resume string
	// Full copies every file; by default a folder backup reuses the files unchanged since a
	// base backup (Base, else the newest complete one of the same storage). Checksum tells
	// unchanged files by their content's hash instead of their size and modification time.
	// A compressed backup is always full.
	Full     bool
	Checksum bool
	Base     string
	// FileIndex writes the file index even where the copies stand for it (a local folder
	// backed up into a local folder, layout.FilesSummary.SelfIndexed), as earlier versions
	// did.
	FileIndex bool
	// Recipients, when set, encrypt the backup to these age public keys; Passphrase (never
	// recorded anywhere) instead encrypts it to a key the run generates or takes over from its
	// base, sealed with the passphrase. At most one of the two.
	Recipients *encryption.Recipients
	Passphrase string
	// CheckPlanned, when set, is called once a new run's files are planned and before any
	// task runs, with the bytes of the files the plan stores anew (not those an incremental
	// backup reuses from its base): its error ends the run before anything is copied, and the
	// staging area is removed (a free-space check sized by the plan, not by a second walk of
	// the storage).
	CheckPlanned func(ctx context.Context, fileBytes int64) error
}

// resumable are the options a resumed run takes from its record.
type resumable struct {
	BackupDir    string   `json:"backup_dir"`
	SkipDB       bool     `json:"skip_db"`
	SkipFiles    bool     `json:"skip_files"`
	Models       []string `json:"models,omitempty"`
	Compress     bool     `json:"compress"`
	Compression  string   `json:"compression,omitempty"`
	Indent       int      `json:"indent"`
	ChunkRows    int      `json:"chunk_rows"`
	FilesPerTask int      `json:"files_per_task"`
	BytesPerTask int64    `json:"bytes_per_task"`
	Workers      int      `json:"workers"`
	Full         bool     `json:"full,omitempty"`
	Checksum     bool     `json:"checksum,omitempty"`
	Base         string   `json:"base,omitempty"`
	FileIndex    bool     `json:"file_index,omitempty"`
	// Recipients are an encrypted run's public keys; Passphrase says it was encrypted in
	// passphrase mode (the passphrase itself is never recorded: a resume needs it again).
	Recipients []string `json:"recipients,omitempty"`
	Passphrase bool     `json:"passphrase,omitempty"`
}

// ModelReport is one model's outcome.
type ModelReport struct {
	Label  string
	File   string
	Rows   int64
	Bytes  int64
	SHA256 string
	// Chunks is the number of export tasks of the model (1), Pieces the primary-key ranges
	// its task read it in.
	Chunks int
	Pieces int
}

// BackupReport is a finished backup.
type BackupReport struct {
	RunID  string
	Path   string
	Models []ModelReport
	Files  int64
	Bytes  int64
	// Base is the backup whose unchanged files this one reused ("" for a full backup); New
	// and Reused split Files and Bytes between files stored and files reused.
	Base   string
	New    layout.FileCount
	Reused layout.FileCount
	// Folders is the storage's folders recorded apart from its files (empty, or with
	// permissions of their own: layout.FolderSummary).
	Folders  int
	Warnings []string
	// References is the database ↔ storage cross-check (see layout.References).
	References *layout.References
	Duration   time.Duration
	// TraceID is the run's trace (hex), empty when tracing is off.
	TraceID string
}

// Backup runs a whole backup: checks, one snapshot, tasks on the queue, assembly, publication.
// On any failure nothing named like a backup is left behind. The run is one trace.
func (c *Coordinator) Backup(ctx context.Context, o BackupOptions) (*BackupReport, error) {
	ctx, span := telemetry.StartRun(ctx, "backup")
	rep, err := c.backup(ctx, o)
	var took time.Duration
	if err == nil {
		took = rep.Duration
		rep.TraceID = telemetry.TraceID(ctx)
	}
	telemetry.EndRun(span, "backup", outcome.Of(err), took, err)
	return rep, err
}

// backupRun is one backup as it goes through its phases: check, claim, stage, snapshot, plan,
// run the tasks, assemble, publish, end. Each phase is a method that fills in what the next
// one needs.
type backupRun struct {
	c     *Coordinator
	o     BackupOptions
	log   *slog.Logger
	start time.Time
	// rec and rev are the record of the run being resumed (nil for a new run) and its
	// revision; gen is this coordinator's generation of the run.
	rec *messages.RunRecord
	rev uint64
	gen int

	models   []platform.Model
	db       *database.DB
	src      *storage.Bucket
	warnings []string
	// damagedBases are the base backups a plan found damaged as it read them, passed over.
	damagedBases []string
	// holds keep the bases considered from being pruned until the run ends (holdBase).
	holds []func()
	// fileMeta gathers, from the copy tasks' sums, the files that changed while they were
	// copied and the files' permissions.
	fileMeta layout.FilesSummary

	track *tracker
	stage destination
	// assembled is set when a resume finds the staging area complete (metadata written):
	// only the publication is left to do.
	assembled bool

	snap     *database.Snapshot
	snapDir  string
	tasks    []*messages.Task
	rows     int64
	plans    map[string][]*messages.Task // model label → its export tasks in pk order
	prefixes []string
	// files is what the file plan found besides the copies: skipped entries, name encoding.
	files   filePlanInfo
	done    map[string]*messages.Result
	results map[string]*messages.Result
	// sums reads the copy tasks' lists of sums as they finish (tasksums.go).
	sums *taskSums

	rep       *BackupReport
	published bool
	// skipped counts storage entries not backed up because they are not regular files.
	skipped map[string]int64
	// archiveTop is a compressed backup's name, chosen when its files are planned: the top
	// folder of the archive parts the copy tasks write.
	archiveTop string
	// body, in a local compressed run, is its archive built as the copies finish.
	body *archiveBody
	// runKey, in an encrypted run, is the key its intermediate outputs (chunks of split
	// models, archive parts) are encrypted to: only this coordinator, in memory, reads them.
	runKey *encryption.RunKey
	// crypt is how the backup is encrypted (nil: not encrypted), settled before planning.
	crypt *backupCrypt

	// migrations are the applied Django migrations read in the snapshot (nil: none recorded).
	migrations database.AppliedMigrations
	// permissions are the auth permissions the backed-up rows name: id → app.model.codename.
	permissions map[string]string
}

func (c *Coordinator) backup(ctx context.Context, o BackupOptions) (rep *BackupReport, err error) {
	r, err := c.newBackupRun(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.check(ctx); err != nil {
		return nil, err
	}
	runCtx, err := r.claim(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { r.end(rep, err) }()
	if err := r.openStage(runCtx); err != nil {
		return nil, err
	}
	if r.published {
		return r.rep, nil
	}
	if !r.assembled {
		if err := r.prepare(runCtx); err != nil {
			return nil, err
		}
		if err := r.runTasks(runCtx); err != nil {
			return nil, err
		}
		if err := r.assemble(runCtx); err != nil {
			return nil, err
		}
	}
	if err := r.publish(runCtx); err != nil {
		return nil, err
	}
	return r.rep, nil
}

// newBackupRun settles the options: a resume's come from the record of the run it resumes.
func (c *Coordinator) newBackupRun(ctx context.Context, o BackupOptions) (*backupRun, error) {
	r := &backupRun{c: c, start: time.Now(), plans: map[string][]*messages.Task{}}
	if o.Resume != "" {
		var err error
		if r.rec, r.rev, err = c.resumeRecord(ctx, &o); err != nil {
			return nil, fmt.Errorf("backup --resume: %w", err)
		}
		r.start, r.gen = r.rec.Started.Local(), r.rec.Generation+1
	}
	if o.SkipDB && o.SkipFiles {
		return nil, errors.New("backup: --skip-db and --skip-files leave nothing to back up")
	}
	if o.Recipients != nil && o.Passphrase != "" {
		return nil, errors.New("backup: age recipients and a passphrase contradict each other: give one of the two")
	}
	if o.encrypting() && o.Checksum {
		return nil, errors.New("backup: --checksum cannot tell unchanged files of an encrypted backup (its base's plaintext sums are encrypted)")
	}
	if o.encrypting() {
		var err error
		if r.runKey, err = encryption.NewRunKey(); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	if o.BackupDir == "" {
		o.BackupDir = "backups"
	}
	if err := RefuseDestinationInBackup("--backup-dir", o.BackupDir); err != nil {
		return nil, err
	}
	if !storage.IsS3(o.BackupDir) {
		// file:///srv/backups is the folder /srv/backups, as --storage takes it (filepath.Abs
		// would make it ./file:/srv/backups).
		o.BackupDir = storage.LocalPath(o.BackupDir)
		// Reports, the run registry and a resume from another folder need the full path.
		if abs, err := filepath.Abs(o.BackupDir); err == nil {
			o.BackupDir = abs
		}
	}
	if o.ChunkRows <= 0 {
		o.ChunkRows = DefaultChunkRows
	}
	if o.FilesPerTask <= 0 {
		o.FilesPerTask = 2000
	}
	if o.BytesPerTask <= 0 {
		o.BytesPerTask = 256 << 20
	}
	if o.RunID == "" {
		o.RunID = NewRunID(r.start)
	}
	r.o, r.log = o, c.log.With("run", o.RunID)
	telemetry.Annotate(ctx, telemetry.KeyRun.String(o.RunID))
	return r, nil
}

// check opens the database and the storage and checks that they can be backed up (and, for a
// resume, that they are the run's).
func (r *backupRun) check(ctx context.Context) error {
	o := &r.o
	var err error
	if !o.SkipDB {
		if r.models, err = platform.Default.Select(o.Models); err != nil {
			return fmt.Errorf("backup: --models: %w", err)
		}
		if r.db, err = database.OpenWith(ctx, o.DatabaseURL, database.Options{LockTimeout: o.LockTimeout, Silence: database.SilenceFor(r.c.StallTimeout)}); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		w, err := r.db.CheckSchema(ctx, r.models)
		if err != nil {
			return fmt.Errorf("backup: database schema: %w", err)
		}
		r.warnings = append(r.warnings, w...)
	}
	if !o.SkipFiles {
		if r.src, err = storage.Open(ctx, o.StorageURL); err != nil {
			return fmt.Errorf("backup: storage: %w", err)
		}
	}
	if err := refuseDuringRestore(ctx, *o, r.db, r.src); err != nil {
		return err
	}
	if !o.SkipFiles {
		if err := checkReadableRoot(o.StorageURL); err != nil {
			return fmt.Errorf("backup: storage: %w", err)
		}
		if err := refuseBackupsInStorage(o.BackupDir, o.StorageURL); err != nil {
			return err
		}
	}
	if r.rec != nil {
		if err := sameSources(r.rec, r.db, r.src); err != nil {
			return fmt.Errorf("backup --resume %s: %w", o.RunID, err)
		}
	}
	return nil
}

// refuseBackupsInStorage refuses a local backup folder that lies inside the local storage it
// backs up (symlinks resolved): each backup would hold its own staging area and every backup
// before it, growing each night.
func refuseBackupsInStorage(backupDir, storageURL string) error {
	if storage.IsS3(backupDir) || storage.IsS3(storageURL) {
		return nil
	}
	dir := storage.LocalPath(backupDir)
	root, err := resolvePath(storage.LocalPath(storageURL))
	if err != nil {
		return nil // the storage's own checks speak of it
	}
	if in, err := inside(root, dir); err == nil && in {
		return outcome.Usagef("--backup-dir %s lies inside the storage %s: each backup would hold the backups before it and its own staging area; keep backups outside the storage (nothing was changed)", dir, storageURL)
	}
	return nil
}

// claim records the run as this coordinator's: a new record for a new run, a compare-and-swap
// on the revision read for a resume, so of two resumes of one run only one proceeds. Nothing
// is touched before the claim. The context returned ends if the claim is lost.
func (r *backupRun) claim(ctx context.Context) (context.Context, error) {
	o := r.o
	opts := recordedOptions(o)
	record := messages.RunRecord{ID: o.RunID, Kind: "backup", Started: r.start.UTC(), BackupDir: o.BackupDir,
		Staging: stagingLocation(o.BackupDir, o.RunID), Options: opts, Generation: r.gen}
	if r.rec != nil {
		record.Publishing = r.rec.Publishing
	}
	if r.db != nil {
		record.Database = r.db.Source().Redacted
	}
	if r.src != nil {
		record.Storage = r.src.String()
	}
	track, runCtx, err := r.c.track(ctx, record, r.rev)
	if err != nil {
		if r.rec != nil {
			return nil, fmt.Errorf("backup --resume %s: %w", o.RunID, err)
		}
		return nil, fmt.Errorf("backup: %w", err)
	}
	r.track = track
	if r.rec != nil {
		r.log.Info("run claimed", "generation", r.gen, "previous", r.rec.Coordinator)
	}
	return runCtx, nil
}

// recordedOptions are the options a run's record keeps for a resume: an encrypted run's
// public keys, or only the fact that it used a passphrase (never the passphrase).
func recordedOptions(o BackupOptions) []byte {
	var public []string
	if o.Recipients != nil {
		public = o.Recipients.Public()
	}
	opts, _ := json.Marshal(resumable{
		BackupDir: o.BackupDir, SkipDB: o.SkipDB, SkipFiles: o.SkipFiles, Models: o.Models, Compress: o.Compress,
		Compression: o.Compression, Indent: o.Indent, ChunkRows: o.ChunkRows, FilesPerTask: o.FilesPerTask, BytesPerTask: o.BytesPerTask, Workers: o.Workers,
		Full: o.Full, Checksum: o.Checksum, Base: o.Base, FileIndex: o.FileIndex, Recipients: public, Passphrase: o.Passphrase != "",
	})
	return opts
}

// openStage opens the staging area. A resume looks at what its predecessor left there: a
// complete staging area (metadata written) only needs publishing; a missing one (the
// predecessor died before writing anything) is planned afresh; one whose publication finished
// (S3: the staging area was being removed) only needs that removal.
func (r *backupRun) openStage(ctx context.Context) error {
	stage, err := openDestination(ctx, r.o.BackupDir, r.o.RunID)
	if err != nil {
		return fmt.Errorf("backup: destination %s: %w", redact.URL(r.o.BackupDir), err)
	}
	r.stage = stage
	if r.rec == nil {
		return nil
	}
	_, err = stage.Bucket().Stat(ctx, layout.FileMetadata)
	switch {
	case err == nil:
		r.assembled = true
		r.log.Info("resume: the staging area is assembled; publishing it")
		return nil
	case !errors.Is(err, storage.ErrNotExist):
		return fmt.Errorf("backup --resume: look at the staging area: %w", err)
	}
	if name := r.rec.Publishing; name != "" {
		if err := r.finishedPublish(ctx, name); err != nil || r.published {
			return err
		}
		// The staging area is not complete, so that name will not be reused: this run is
		// assembled afresh and published under a free name.
		r.track.update(func(rec *messages.RunRecord) { rec.Publishing = "" })
	}
	return nil
}

// finishedPublish checks whether the predecessor's publication under name was complete: its
// metadata, written last, is there and names this run, or its archive (a multipart upload,
// visible only once complete) is. If so the run only removes what is left of its staging area.
func (r *backupRun) finishedPublish(ctx context.Context, name string) error {
	root, err := storage.Open(ctx, r.o.BackupDir)
	if err != nil {
		return fmt.Errorf("backup --resume: %w", err)
	}
	defer root.Close()
	rep := &BackupReport{RunID: r.o.RunID}
	switch {
	case r.archiveEncrypted():
		name += r.compression().Ext() + layout.EncryptedExt
		if rep, err = r.finishedSealed(ctx, name); err != nil {
			return fmt.Errorf("backup --resume: %w", err)
		} else if rep == nil {
			return nil
		}
	case r.o.Compress:
		ext := r.compression().Ext()
		if _, err := root.Stat(ctx, name+ext); errors.Is(err, storage.ErrNotExist) {
			return nil
		} else if err != nil {
			return fmt.Errorf("backup --resume: %w", err)
		}
		name += ext
	default:
		meta, err := readMetadata(ctx, root, name+"/"+layout.FileMetadata)
		if errors.Is(err, storage.ErrNotExist) {
			return nil
		}
		if err != nil || meta.RunID != r.o.RunID {
			return err
		}
		rep = reportOf(r.o.RunID, meta)
	}
	r.log.Info("resume: the backup was published already; removing the rest of its staging area", "name", name)
	if err := r.stage.Abort(); err != nil {
		return fmt.Errorf("backup --resume: remove the staging area: %w", err)
	}
	rep.Path, rep.Duration = storage.Join(r.o.BackupDir, name), time.Since(r.start)
	r.rep, r.published = rep, true
	return nil
}

// prepare takes the snapshot and plans the tasks: file copies once (a resumed run keeps its
// plan and what is done of it), database exports every time, under a snapshot this
// coordinator holds.
func (r *backupRun) prepare(ctx context.Context) (err error) {
	ctx, span := telemetry.Start(ctx, "backup.plan")
	defer telemetry.EndErr(span, &err)
	if err := r.snapshot(ctx); err != nil {
		return err
	}
	if err := r.settleKeys(ctx); err != nil {
		return err
	}
	if err := r.planExports(ctx); err != nil {
		return err
	}
	halt(ctx, "plan")
	if err := r.planFiles(ctx); err != nil {
		return err
	}
	if r.rec != nil {
		r.c.purge(r.o.RunID) // what the dead coordinator left queued is re-published under new ids
	}
	if r.o.CheckPlanned != nil && r.rec == nil {
		if err := r.o.CheckPlanned(ctx, r.files.NewBytes); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	if r.o.Progress != nil {
		r.o.Progress.Total(progress.Rows, r.rows)
		r.o.Progress.Total(progress.Files, r.plannedBytes())
	}
	r.log.Info("backup planned", "models", len(r.models), "tasks", len(r.tasks), "already_done", len(r.done), "staging", r.stage.Location())
	span.SetAttributes(telemetry.KeyTasks.Int(len(r.tasks)))
	return nil
}

// plannedBytes is the file bytes of the copy tasks still to run.
func (r *backupRun) plannedBytes() int64 {
	var n int64
	for _, t := range r.tasks {
		if t.Copy != nil && r.done[t.ID] == nil {
			n += t.Copy.Bytes
		}
	}
	return n
}

// snapshot opens the database snapshot every export reads.
func (r *backupRun) snapshot(ctx context.Context) error {
	if r.db == nil {
		return nil
	}
	dir, err := snapshotDir(r.stage, r.o.encrypting())
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	r.snapDir = dir
	if r.snap, err = r.db.BeginSnapshot(ctx, dir); err != nil {
		return fmt.Errorf("backup: open snapshot: %w", err)
	}
	if err := r.noteOutsideReferences(ctx); err != nil {
		return err
	}
	return r.recordMigrations(ctx)
}

// planExports plans one export task per model, a large model's cut into primary-key pieces
// its worker reads in parallel. Tasks are ordered largest first, so that no big table is
// left for the end.
func (r *backupRun) planExports(ctx context.Context) error {
	if r.db == nil {
		return nil
	}
	var exports []plannedExport
	planned, err := r.snap.PlanAllPieces(ctx, r.models, r.o.ChunkRows, PieceBytes, planners)
	if err != nil {
		return fmt.Errorf("backup: plan the exports: %w", err)
	}
	for i, m := range r.models {
		ranges := planned[i]
		if len(ranges) == 0 {
			ranges = []database.Range{{}}
		}
		t := r.exportTask(m, ranges)
		r.plans[m.Label] = []*messages.Task{t}
		var rows int64
		for _, rg := range ranges {
			rows += rg.Rows
		}
		r.rows += rows
		exports = append(exports, plannedExport{t, len(ranges), rows})
	}
	slices.SortStableFunc(exports, func(a, b plannedExport) int {
		return cmp.Or(cmp.Compare(b.pieces, a.pieces), cmp.Compare(b.rows, a.rows))
	})
	for _, e := range exports {
		r.tasks = append(r.tasks, e.task)
	}
	return nil
}

// planners is how many tables are planned at once when the exports are planned. Each is a
// query or two now that the server's estimates spare most counts: a third planner's
// connection costs more than it saves.
const planners = 2

// plannedExport is an export task with its planned size (pieces of about PieceBytes, rows).
type plannedExport struct {
	task   *messages.Task
	pieces int
	rows   int64
}

// exportTask is the task that exports model m in ranges.
func (r *backupRun) exportTask(m platform.Model, ranges []database.Range) *messages.Task {
	id := taskID("export", m.Table) + r.suffix()
	e := &messages.ExportTask{
		Database: r.db.Source().Redacted, Snapshot: r.snap.ID(), Model: m.Label,
		Indent: r.o.Indent, Whole: true, Recipients: r.exportRecipients(),
		// Outputs are named by task, so a late task of a dead coordinator can never
		// overwrite what its successor exported.
		Output:     path.Join(internalDir, "exports", id+".json"),
		References: r.refsKey(m, id),
	}
	e.ReferencesRecipients = r.refsRecipients(e.References)
	if len(ranges) > 1 {
		for _, rg := range ranges {
			e.Pieces = append(e.Pieces, messages.PKRange{Lo: rg.Lo, Hi: rg.Hi, HasLo: rg.HasLo, HasHi: rg.HasHi, Rows: rg.Rows})
		}
	}
	return &messages.Task{
		Version: messages.Version, Run: r.o.RunID, Kind: messages.KindExportModel, Dest: r.stage.Location(), ID: id,
		Generation: r.gen, Export: e,
	}
}

// suffix tells a resumed generation's task ids from its predecessors' ("-r2").
func (r *backupRun) suffix() string {
	if r.gen == 0 {
		return ""
	}
	return fmt.Sprintf("-r%d", r.gen)
}

// planFiles plans the file copies, or reloads a resumed run's plan. The plan is saved in the
// staging area, where it stays until the backup is published.
func (r *backupRun) planFiles(ctx context.Context) error {
	if r.src == nil {
		return nil
	}
	dest := r.stage.Bucket()
	var (
		copies []*messages.Task
		err    error
	)
	if r.rec != nil {
		copies, r.prefixes, r.files, r.done, err = r.c.resumeCopies(ctx, r.o.RunID, dest, r.suffix(), r.gen)
		if errors.Is(err, storage.ErrNotExist) {
			r.log.Warn("resume: the run had not saved its file plan; planning the files afresh")
			err = nil
			copies = nil
		}
	}
	if copies == nil && err == nil {
		copies, r.prefixes, r.files, err = r.planCopiesIncremental(ctx)
		for _, t := range copies {
			t.Generation = r.gen
		}
		if err == nil {
			err = r.planObjectStore(ctx, copies, r.files.Base)
		}
		if err == nil {
			err = r.archiveParts(ctx, copies)
		}
		if err == nil {
			err = savePlan(ctx, dest, copies, r.prefixes, r.files)
		}
	}
	if err == nil && r.rec != nil {
		err = r.archiveParts(ctx, copies) // the ids of the tasks to run again changed
	}
	if err != nil {
		return fmt.Errorf("backup: plan files: %w", err)
	}
	r.tasks = interleave(r.tasks, copies)
	for _, sp := range r.files.Special {
		r.log.Warn(sp.Warning)
	}
	for _, w := range append(r.files.Modes, r.files.Times...) {
		r.log.Warn(w)
	}
	return nil
}

// runTasks publishes the tasks and waits for all of them.
func (r *backupRun) runTasks(ctx context.Context) (err error) {
	var exported, copied bool
	files, stop := r.c.watchFiles(ctx, r.o.RunID, r.o.Progress)
	defer stop()
	r.startArchiveBody(ctx)
	ts, err := r.startTaskSums(ctx)
	if err != nil {
		return err
	}
	r.sums = ts
	defer func() {
		if err != nil {
			ts.close() // assemble, which would remove the writers' runs, does not follow
		}
	}()
	byID := make(map[string]*messages.Task, len(r.tasks))
	for _, t := range r.tasks {
		byID[t.ID] = t
	}
	results, err := r.c.dispatch(ctx, r.o.RunID, r.tasks, r.done, func(res *messages.Result) {
		r.log.Debug("task done", "task", res.Task, "rows", res.Rows, "files", res.Files, "bytes", res.Bytes, "worker", res.Worker)
		if res.Kind == messages.KindExportModel {
			if r.o.Progress != nil {
				r.o.Progress.Add(progress.Rows, res.Rows)
			}
			if !exported {
				exported = true
				halt(ctx, "export")
			}
			return
		}
		files.finish(res.Task, res.Bytes)
		r.partDone(res.Task)
		ts.arrived(byID[res.Task])
		if !copied {
			copied = true
			halt(ctx, "copy")
		}
	})
	if err != nil {
		ts.stop()
		return fmt.Errorf("backup: %w", err)
	}
	if err := ts.wait(); err != nil {
		return err
	}
	r.results = results
	if r.snap != nil {
		r.snap.Close() // every export has read it
	}
	return r.sweepLeftovers(results)
}

// sweepLeftovers removes what a worker killed while writing left in the staging area: a
// temporary file of a task another worker redid, garbage that must not be published. Only a
// task that ran more than once, or a run resumed, can have left one: otherwise the staging
// area (a walk of every file) is not searched.
func (r *backupRun) sweepLeftovers(results map[string]*messages.Result) error {
	if r.gen == 0 && !redone(results) {
		return nil
	}
	if err := r.stage.Sweep(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// redone tells whether any task's final result is from a second attempt or later: its first
// attempt may have died halfway.
func redone(results map[string]*messages.Result) bool {
	for _, res := range results {
		if res.Attempt != 1 {
			return true
		}
	}
	return false
}

// assemble puts the fixtures in place and writes the manifest, the restore script and, last,
// the metadata: a staging area with metadata is complete.
func (r *backupRun) assemble(ctx context.Context) (err error) {
	ctx, span := telemetry.Start(ctx, "backup.assemble")
	defer telemetry.EndErr(span, &err)
	dest := r.stage.Bucket()
	r.rep = &BackupReport{RunID: r.o.RunID}
	defer r.sums.close()
	sums, plain, index := r.sums.sums, r.sums.plain, r.sums.index
	meta := r.metadata(ctx)
	seal := r.sealOfModels()
	for i, m := range r.models {
		mr, plainSum, err := r.c.assembleModel(ctx, dest, m, r.plans[m.Label], r.results, seal)
		if err != nil {
			return fmt.Errorf("backup: assemble %s: %w", m.Label, err)
		}
		if plainSum != "" {
			if err := plain.Add(mr.File, plainSum); err != nil {
				return err
			}
		}
		r.rep.Models = append(r.rep.Models, *mr)
		meta.Models = append(meta.Models, layout.ModelEntry{Label: m.Label, File: mr.File, Rows: mr.Rows, SHA256: mr.SHA256, Bytes: mr.Bytes})
		if err := sums.Add(mr.File, mr.SHA256); err != nil {
			return err
		}
		if i == 0 {
			halt(ctx, "assemble")
		}
	}
	if err := r.collectFiles(ctx); err != nil {
		return err
	}
	meta.Files = r.fileMeta
	meta.Files.Count, meta.Files.Bytes, meta.Files.Prefixes = r.rep.Files, r.rep.Bytes, r.prefixes
	meta.Files.NameEncoding, meta.Files.Skipped = r.files.NameEncoding, r.skipped
	if r.rep.Folders = r.files.Folders.Len(); r.rep.Folders > 0 {
		meta.Files.Folders = r.files.Folders
	}
	if err := r.writeArchiveManifest(ctx); err != nil {
		return err
	}
	meta.Files.Base, meta.Files.New, meta.Files.Reused = r.rep.Base, r.rep.New, r.rep.Reused
	if r.usesObjects() {
		meta.Files.Store = layout.StoreObjects
	}
	if err := r.writeFileIndex(ctx, meta, sums, index); err != nil {
		return err
	}
	if err := r.writeEncryption(ctx, meta, sums, plain); err != nil {
		return err
	}
	// The references are checked while the manifest is written: each reads sorted runs of
	// its own (the file index, the sums), and only the metadata needs both.
	refs := r.startReferences(ctx, index)
	err = r.writeIndex(ctx, meta, sums, refs.wait)
	refs.wait() // before the runs go
	if err != nil {
		return err
	}
	span.SetAttributes(telemetry.KeyFiles.Int64(r.rep.Files), telemetry.KeyBytes.Int64(r.rep.Bytes))
	return nil
}

// metadata starts the backup's metadata from the options and sources.
func (r *backupRun) metadata(ctx context.Context) *layout.Metadata {
	o := r.o
	meta := &layout.Metadata{
		BackupTimestamp: r.start,
		DjangoVersion:   layout.DjangoVersion,
		BackupOptions: layout.BackupOptions{
			IncludeFiles: !o.SkipFiles, SkipDB: o.SkipDB, Compress: o.Compress,
			Models: layout.ModelSelection{Labels: selectedLabels(o.Models)},
		},
		ToolVersion: ToolVersion, RunID: o.RunID, Status: layout.StatusComplete, TraceID: telemetry.TraceID(ctx),
		Workers: o.Workers, FixtureIndent: o.Indent,
		StorageBackend: layout.StorageFileSystem,
	}
	if r.db != nil {
		meta.DatabaseEngine = r.db.Source().DjangoEngine()
		meta.Database = r.db.Source().Redacted
		meta.Migrations = r.migrations
		meta.Permissions = r.permissions
	}
	if r.src != nil {
		meta.StorageBackend = r.src.Backend()
		meta.Storage = r.src.String()
	}
	return meta
}

// collectFiles counts the copied files and records what their lists of sums say of them (the
// lists were read into the manifest and the file index as the tasks finished).
func (r *backupRun) collectFiles(ctx context.Context) error {
	for _, sp := range r.files.Special {
		r.warnings = append(r.warnings, sp.Warning)
		r.countSkipped(sp.Kind, 1)
	}
	r.warnings = append(r.warnings, r.files.Modes...)
	r.warnings = append(r.warnings, r.files.Times...)
	for _, id := range slices.Sorted(maps.Keys(r.results)) {
		res := r.results[id]
		r.warnings = append(r.warnings, res.Warnings...)
		if res.Kind == messages.KindCopyPrefix {
			r.rep.Files += res.Files
			r.rep.Bytes += res.Bytes
			r.rep.Reused.Files += res.Reused
			r.rep.Reused.Bytes += res.ReusedBytes
			for kind, n := range res.Skipped {
				r.countSkipped(kind, n)
			}
		}
	}
	r.rep.New = layout.FileCount{Files: r.rep.Files - r.rep.Reused.Files, Bytes: r.rep.Bytes - r.rep.Reused.Bytes}
	r.rep.Base = r.files.Base
	if r.src == nil {
		return nil
	}
	r.sums.mergeFiles(r.tasks, &r.fileMeta)
	return nil
}

// countSkipped counts n storage entries of kind that were not backed up.
func (r *backupRun) countSkipped(kind string, n int64) {
	if r.skipped == nil {
		r.skipped = map[string]int64{}
	}
	r.skipped[kind] += n
}

// writeIndex writes the restore script, SHA256SUMS and, last, the metadata, with what refs
// returns of the references' check.
func (r *backupRun) writeIndex(ctx context.Context, meta *layout.Metadata, sums *layout.SumsWriter, refs func() (*layout.References, []string, error)) error {
	dest := r.stage.Bucket()
	script := layout.RestoreScript(meta)
	if err := writeObject(ctx, dest, layout.FileRestore, script, layout.ScriptMode); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := sums.Add(layout.FileRestore, sha256Hex(script)); err != nil {
		return err
	}
	var err error
	if meta.ManifestSHA256, err = writeSums(ctx, dest, sums); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	refsRep, refsWarnings, err := refs()
	if err != nil {
		return err
	}
	meta.References, r.rep.References = refsRep, refsRep
	r.warnings = append(r.warnings, refsWarnings...)
	meta.Warnings = r.warnings
	r.rep.Warnings = r.warnings
	meta.DurationSeconds = time.Since(r.start).Seconds()
	mdata, err := meta.Marshal()
	if err != nil {
		return fmt.Errorf("backup: metadata: %w", err)
	}
	// The metadata is written last: a staging area without it is incomplete. The run's working
	// files (.wnb: the plan, key lists, hashes) stay until the publication, so a coordinator
	// killed before then can still be resumed.
	if err := writeObject(ctx, dest, layout.FileMetadata, mdata, layout.FileMode); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("backup interrupted: %w", err)
	}
	return nil
}

// readMetadata reads and checks a backup's metadata from b.
func readMetadata(ctx context.Context, b *storage.Bucket, key string) (*layout.Metadata, error) {
	rc, _, err := b.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read the metadata: %w", err)
	}
	data, err := storage.ReadLimited(rc, layout.MaxMetadataSize)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read the metadata %s: %w", key, err)
	}
	return layout.ParseMetadata(data)
}

// reportOf is the report of an assembled backup, from its metadata.
func reportOf(run string, meta *layout.Metadata) *BackupReport {
	rep := &BackupReport{RunID: run, Files: meta.Files.Count, Bytes: meta.Files.Bytes, Warnings: meta.Warnings,
		Base: meta.Files.Base, New: meta.Files.New, Reused: meta.Files.Reused, References: meta.References}
	for _, m := range meta.Models {
		rep.Models = append(rep.Models, ModelReport{Label: m.Label, File: m.File, Rows: m.Rows, SHA256: m.SHA256, Bytes: m.Bytes})
	}
	return rep
}

// publish makes the assembled backup visible under its backup name.
func (r *backupRun) publish(ctx context.Context) (err error) {
	if r.assembled {
		meta, err := readMetadata(ctx, r.stage.Bucket(), layout.FileMetadata)
		if err != nil {
			return fmt.Errorf("backup --resume: the staged backup: %w", err)
		}
		r.rep = reportOf(r.o.RunID, meta)
	}
	ctx, span := telemetry.Start(ctx, "backup.publish", attribute.Bool("wnb.compress", r.o.Compress))
	defer telemetry.EndErr(span, &err)
	p := publishOptions{start: r.start, compress: r.o.Compress, name: r.track.publishing(),
		named: func(ctx context.Context, name string) error {
			return r.track.set(ctx, func(rec *messages.RunRecord) { rec.Publishing = name })
		},
	}
	if r.o.Compress {
		var once bool
		p.archived = func(n int64) {
			if r.o.Progress != nil {
				r.o.Progress.Add(progress.Archive, n)
			}
			if !once {
				once = true
				halt(ctx, "archive")
			}
		}
		p.archive = append(p.archive, archive.WithProgress(p.archived))
		p.archiveTotal = func(n int64) {
			if r.o.Progress != nil {
				r.o.Progress.Total(progress.Archive, n)
			}
		}
		if r.o.Progress != nil {
			r.o.Progress.Total(progress.Archive, r.rep.Bytes+totalBytes(r.rep.Models))
		}
		if err := r.sealArchive(ctx, &p); err != nil {
			return err
		}
	}
	p.body = r.body
	r.rep.Path, err = r.stage.Publish(ctx, p)
	if err != nil {
		return fmt.Errorf("backup: publish: %w", err)
	}
	r.published = true
	r.rep.Duration = time.Since(r.start)
	r.log.Info("backup complete", "path", r.rep.Path, "models", len(r.rep.Models), "files", r.rep.Files, "bytes", r.rep.Bytes, "took", r.rep.Duration.Round(time.Millisecond))
	return nil
}

// end records the outcome and decides what a failed run leaves. The record is written first,
// so a worker that checks it refuses any late task before the staging area goes.
//
// A new run that failed removes its staging area: nobody else ever held the run. A resumed run
// that failed keeps it (with the previous generations' finished copies) and the record names
// it, so a later --resume can use that work. A coordinator that lost its claim touches nothing:
// the staging area is the new holder's.
func (r *backupRun) end(rep *BackupReport, err error) {
	path := ""
	if rep != nil {
		path = rep.Path
	}
	r.closeSnapshot()
	if err != nil && r.gen == 0 && r.stage == nil {
		r.track.update(func(rec *messages.RunRecord) { rec.Staging = "" })
	}
	r.track.finish(path, err)
	switch {
	case r.published || r.stage == nil:
	case !r.track.owned():
		r.log.Warn("another coordinator took the run over; leaving its staging area to it")
	case r.gen > 0:
		r.log.Warn("the staging area is kept for another --resume", "staging", r.stage.Location())
	default:
		if aerr := r.stage.Abort(); aerr != nil {
			r.log.Warn("remove staging area", "err", aerr)
			return
		}
		ctx, cancel := r.c.queue.context()
		defer cancel()
		if serr := r.track.set(ctx, func(rec *messages.RunRecord) { rec.Staging = "" }); serr != nil {
			r.log.Warn("record the staging area's removal", "err", serr)
		}
	}
}

// closeSnapshot ends the snapshot and removes its folder.
func (r *backupRun) closeSnapshot() {
	if r.snap != nil {
		r.snap.Close()
	}
	if r.snapDir != "" {
		if err := os.RemoveAll(r.snapDir); err != nil {
			r.log.Warn("remove the snapshot folder", "err", err)
		}
	}
}

// close releases what the run opened.
func (r *backupRun) close() {
	for _, release := range r.holds {
		release()
	}
	r.closeSnapshot()
	r.body.discard()
	if r.stage != nil {
		r.stage.Close()
	}
	if r.src != nil {
		r.src.Close()
	}
	if r.db != nil {
		r.db.Close()
	}
}

// resumeRecord loads the record of the run to resume, checks that it can be resumed, and
// takes its options. The revision returned is what the claim compares against.
func (c *Coordinator) resumeRecord(ctx context.Context, o *BackupOptions) (*messages.RunRecord, uint64, error) {
	rec, rev, err := c.runEntry(ctx, o.Resume)
	if err != nil {
		return nil, 0, err
	}
	if rec.Kind != "backup" {
		return nil, 0, fmt.Errorf("run %s is a %s, not a backup", rec.ID, rec.Kind)
	}
	now := time.Now()
	if !rec.Resumable(now) {
		switch state := rec.Shown(now); state {
		case messages.RunRunning:
			return nil, 0, &ClaimError{Run: rec.ID, Holder: fmt.Sprintf("%s, generation %d, last heartbeat %s ago",
				rec.Coordinator, rec.Generation, now.Sub(rec.Heartbeat).Round(time.Second))}
		case messages.RunFailed:
			return nil, 0, fmt.Errorf("run %s is failed and its staging area was removed: nothing to resume", rec.ID)
		default:
			return nil, 0, fmt.Errorf("run %s is %s: only an abandoned or failed run can be resumed", rec.ID, state)
		}
	}
	var r resumable
	if err := json.Unmarshal(rec.Options, &r); err != nil {
		return nil, 0, fmt.Errorf("run %s: options: %w", rec.ID, err)
	}
	o.RunID = rec.ID
	o.BackupDir, o.SkipDB, o.SkipFiles, o.Models, o.Compress = r.BackupDir, r.SkipDB, r.SkipFiles, r.Models, r.Compress
	o.Compression = r.Compression
	o.Indent, o.ChunkRows, o.FilesPerTask, o.BytesPerTask = r.Indent, r.ChunkRows, r.FilesPerTask, r.BytesPerTask
	o.Full, o.Checksum, o.Base, o.FileIndex = r.Full, r.Checksum, r.Base, r.FileIndex
	if err := resumeEncryption(o, r); err != nil {
		return nil, 0, fmt.Errorf("run %s: %w", rec.ID, err)
	}
	if o.Workers == 0 {
		o.Workers = r.Workers
	}
	return rec, rev, nil
}

// sameSources refuses to resume a run against another database or storage.
func sameSources(rec *messages.RunRecord, db *database.DB, src *storage.Bucket) error {
	if db != nil && db.Source().Redacted != rec.Database {
		return fmt.Errorf("the run backs up database %s, not %s", rec.Database, db.Source().Redacted)
	}
	if src != nil && src.String() != rec.Storage {
		return fmt.Errorf("the run backs up storage %s, not %s", rec.Storage, src.String())
	}
	return nil
}

// planFile keeps a run's file-copy plan in its staging folder, for a resume.
const planFile = internalDir + "/plan.jsonl"

type savedPlan struct {
	Prefixes []string         `json:"prefixes"`
	Tasks    []*messages.Task `json:"tasks"`
	filePlanInfo
}

// filePlanInfo is what a file plan records besides its tasks.
type filePlanInfo struct {
	// NameEncoding is the backup's layout.FilesSummary.NameEncoding.
	NameEncoding string `json:"name_encoding,omitempty"`
	// Base is the backup whose unchanged files the plan reuses ("" for a full backup).
	Base string `json:"base,omitempty"`
	// Special lists the storage entries skipped because they are not regular files.
	Special []skippedEntry `json:"special,omitempty"`
	// Folders records the storage's empty folders and those with permissions of their own,
	// which the files do not bring back (the metadata's files.folders).
	Folders *layout.FolderSummary `json:"folders,omitempty"`
	// Modes are warnings naming the files whose mode the backup does not keep as it is (no
	// permissions at all; setuid, setgid or sticky bits), at most maxModeWarnings and a count.
	Modes []string `json:"modes,omitempty"`
	// Times are warnings naming the files whose modification time the backup cannot record
	// (noteTime), at most maxModeWarnings and a count.
	Times []string `json:"times,omitempty"`
	// NewBytes is the bytes of the planned files that are stored anew: the files an
	// incremental backup reuses from its base take no space (local: hard links; S3: objects
	// already stored), so the free-space check counts only these.
	NewBytes int64 `json:"new_bytes,omitempty"`
}

// skippedEntry is a storage entry the plan skipped: its kind and the warning naming it
// (written with storage.QuoteKey, so any name survives the plan's JSON).
type skippedEntry struct {
	Kind    string `json:"kind"`
	Warning string `json:"warning"`
}

func savePlan(ctx context.Context, dest *storage.Bucket, tasks []*messages.Task, prefixes []string, info filePlanInfo) error {
	data, err := json.Marshal(savedPlan{Prefixes: prefixes, Tasks: tasks, filePlanInfo: info})
	if err != nil {
		return err
	}
	_, err = dest.Put(ctx, planFile, bytes.NewReader(data), storage.Object{Mode: 0o600})
	return err
}

// baseTaskID strips a resume generation suffix ("-r2") from a task id.
func baseTaskID(id string) string {
	i := strings.LastIndex(id, "-r")
	if i < 0 || i+2 == len(id) {
		return id
	}
	for _, r := range id[i+2:] {
		if r < '0' || r > '9' {
			return id
		}
	}
	return id[:i]
}

// resumeCopies reloads a run's copy plan: tasks whose final result is in and whose hashes are
// written are done; the others get new ids (suffix) and the new generation so they are
// published afresh. A run that never saved its plan gets an error matching storage.ErrNotExist.
func (c *Coordinator) resumeCopies(ctx context.Context, run string, dest *storage.Bucket, suffix string, gen int) ([]*messages.Task, []string, filePlanInfo, map[string]*messages.Result, error) {
	r, _, err := dest.Open(ctx, planFile)
	if err != nil {
		return nil, nil, filePlanInfo{}, nil, fmt.Errorf("read the run's plan: %w", err)
	}
	var p savedPlan
	err = json.NewDecoder(r).Decode(&p)
	r.Close()
	if err != nil {
		return nil, nil, filePlanInfo{}, nil, fmt.Errorf("read the run's plan: %w", err)
	}
	results, err := c.js.Stream(ctx, messages.StreamResults)
	if err != nil {
		return nil, nil, filePlanInfo{}, nil, err
	}
	done := map[string]*messages.Result{}
	for _, t := range p.Tasks {
		base := baseTaskID(t.ID)
		msg, err := results.GetLastMsgForSubject(ctx, messages.ResultSubject(run, t.ID))
		if err == nil {
			if res, derr := messages.DecodeResult(msg.Data); derr == nil && res.OK() {
				if _, serr := dest.Stat(ctx, t.Copy.Sums); serr == nil {
					done[t.ID] = res
					continue
				}
			}
		} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil, filePlanInfo{}, nil, fmt.Errorf("read result of %s: %w", t.ID, err)
		}
		t.ID, t.Generation = base+suffix, gen
		t.Copy.Sums = path.Join(internalDir, "sums", t.ID+".jsonl")
	}
	return p.Tasks, p.Prefixes, p.filePlanInfo, done, nil
}

// assembleModel puts a model's fixture in place: its export task wrote it whole, hashed as it
// was written; it is renamed. With seal the fixture is stored encrypted (NAME.age), as the task
// wrote it; plain is then the fixture's plaintext sum ("" unencrypted). An encrypted archive's
// fixture (seal.staged) stays encrypted to the run key under its plain name, and mr has its
// plaintext's sum and size, as the archive will hold it.
func (c *Coordinator) assembleModel(ctx context.Context, dest *storage.Bucket, m platform.Model, tasks []*messages.Task, results map[string]*messages.Result, seal *modelSeal) (mr *ModelReport, plain string, err error) {
	if len(tasks) != 1 {
		return nil, "", fmt.Errorf("%d export tasks planned, want 1", len(tasks))
	}
	t, r := tasks[0], results[tasks[0].ID]
	if r == nil {
		return nil, "", fmt.Errorf("task %s has no result", t.ID)
	}
	mr = &ModelReport{Label: m.Label, File: m.FixtureName(), Chunks: 1, Pieces: max(len(t.Export.Pieces), 1), Rows: r.Rows}
	if seal != nil && !seal.staged {
		mr.File += encryption.Ext
	}
	if seal != nil && (r.PlainSHA256 == "" || seal.staged && r.PlainBytes == 0) {
		return nil, "", fmt.Errorf("task %s did not encrypt its output", t.ID)
	}
	mr.SHA256, mr.Bytes, plain = r.SHA256, r.Bytes, r.PlainSHA256
	if seal != nil && seal.staged {
		mr.SHA256, mr.Bytes, plain = r.PlainSHA256, r.PlainBytes, ""
	}
	if err := dest.Rename(ctx, t.Export.Output, mr.File); err != nil {
		return nil, "", err
	}
	return mr, plain, nil
}

// interleave alternates exports and copies (each kept in its order), so that workers take
// both kinds from the start and neither waits for the other to be done.
func interleave(exports, copies []*messages.Task) []*messages.Task {
	out := make([]*messages.Task, 0, len(exports)+len(copies))
	for i := 0; i < max(len(exports), len(copies)); i++ {
		if i < len(exports) {
			out = append(out, exports[i])
		}
		if i < len(copies) {
			out = append(out, copies[i])
		}
	}
	return out
}

// planCopies lists the storage once and cuts it into copy tasks of similar size: one or more
// per top-level prefix (content/, images/, media/, and whatever else the storage holds, so
// nothing is silently left out). Each task's key list is written to the destination. Entries
// that are not regular files are skipped and returned, to be named in the warnings. On S3,
// whose keys must be UTF-8, each file is stored under its escaped name (storage.EscapeKey).
// The listing is sorted (in runs spilled under spill) and merged with inc's base, if any,
// whose unchanged files are reused.
func (c *Coordinator) planCopies(ctx context.Context, run string, src *storage.Bucket, o BackupOptions, dest *storage.Bucket, destURL, spill string, inc incremental) ([]*messages.Task, []string, filePlanInfo, error) {
	p := &copyPlanner{run: run, o: o, dest: dest, destURL: destURL, seq: map[string]int{}, inc: inc}
	if !dest.IsLocal() {
		p.info.NameEncoding = layout.NamesEscaped
	}
	if inc.base != nil {
		p.info.Base = inc.base.name
	}
	err := p.joinBase(ctx, p.listing(ctx, src, spill), inc)
	if err == nil {
		err = p.flush(ctx)
	}
	if err == nil {
		err = p.unholdableError()
	}
	if err != nil {
		return nil, nil, filePlanInfo{}, err
	}
	sort.Strings(p.prefixes)
	return p.tasks, p.prefixes, p.info, nil
}

// copyPlanner cuts the storage's listing into copy tasks as it streams past.
type copyPlanner struct {
	run     string
	o       BackupOptions
	dest    *storage.Bucket
	destURL string

	tasks    []*messages.Task
	prefixes []string
	info     filePlanInfo
	cur      *messages.Task
	list     strings.Builder
	lw       *messages.FileListWriter
	seq      map[string]int
	inc      incremental
	// loadFiles (in eighths of a new file) and loadBytes are the current task's work, a
	// reused file counting for less than a copied one.
	loadFiles int
	loadBytes int64
	// modeNotes counts the files whose mode the backup does not keep as it is (noteMode);
	// timeNotes those whose time it cannot record (noteTime).
	modeNotes, timeNotes int
	// tooLong counts the files an encrypted backup folder cannot hold, the first of them
	// named in tooLongNames (noteSealedName).
	tooLong      int
	tooLongNames []string
	// longPaths counts the files too long for an archive, the first of them (cut) named in
	// longPathNames (noteArchivePath).
	longPaths     int
	longPathNames []string
}

// add puts one file (e: its key-list entry, Path where the backup stores it) in the current
// task, starting a new task at a new prefix or when the current one is full.
func (p *copyPlanner) add(ctx context.Context, e messages.FileEntry) error {
	prefix := topPrefix(e.Key)
	if p.cur != nil && (p.cur.Copy.Prefix != prefix || p.loadFiles >= newFileWeight*p.o.FilesPerTask || p.loadBytes >= p.o.BytesPerTask) {
		if err := p.flush(ctx); err != nil {
			return err
		}
	}
	if p.cur == nil {
		p.start(prefix)
	}
	p.cur.Copy.Keys++
	p.cur.Copy.Bytes += e.Size
	if e.Reuse == "" {
		p.info.NewBytes += e.Size
	}
	if e.Reuse != "" && !p.inc.checksum {
		p.loadFiles += reuseFileWeight
		p.loadBytes += min(e.Size, reuseByteCost)
	} else {
		p.loadFiles += newFileWeight
		p.loadBytes += e.Size
	}
	e.Path = "" // the worker decides where the file goes
	return p.lw.Add(e)
}

// start begins the next task of prefix.
func (p *copyPlanner) start(prefix string) {
	n := p.seq[prefix]
	p.seq[prefix]++
	if n == 0 {
		p.prefixes = append(p.prefixes, prefix)
	}
	name := strings.TrimSuffix(prefix, "/")
	if name == "" {
		name = "root"
	}
	id := taskID("copy", name, fmt.Sprintf("%04d", n))
	p.cur = &messages.Task{
		Version: messages.Version, Run: p.run, ID: id, Kind: messages.KindCopyPrefix, Dest: p.destURL,
		Copy: &messages.CopyTask{
			Source: p.o.StorageURL, Prefix: prefix, DestPrefix: layout.FilesDir + "/",
			KeyList: path.Join(internalDir, "keys", id+".jsonl"),
			Sums:    path.Join(internalDir, "sums", id+".jsonl"),
		},
	}
	if p.inc.base != nil {
		p.cur.Copy.Base, p.cur.Copy.Checksum = p.inc.location, p.inc.checksum
		p.cur.Copy.SelfIndexedBase = p.inc.sums != nil
	}
	p.cur.Copy.Recipients = p.inc.recipients
	p.loadFiles, p.loadBytes = 0, 0
	p.list.Reset()
	p.lw = messages.NewFileListWriter(&p.list)
}

// flush writes the current task's key list and adds the task to the plan.
func (p *copyPlanner) flush(ctx context.Context) error {
	if p.cur == nil {
		return nil
	}
	if err := p.lw.Flush(); err != nil {
		return err
	}
	if _, err := p.dest.Put(ctx, p.cur.Copy.KeyList, strings.NewReader(p.list.String()), storage.Object{Mode: 0o600}); err != nil {
		return err
	}
	p.tasks = append(p.tasks, p.cur)
	p.cur = nil
	return nil
}

// collectSums adds the per-file hashes the copy tasks wrote to the manifest, and records in
// files each file's permissions and the files that changed while they were copied (every one
// of them: result warnings are capped).
//
// An encrypted file's plaintext sum (FileEntry.Plain) goes to plain, and nowhere else.
func (c *Coordinator) collectSums(ctx context.Context, dest *storage.Bucket, tasks []*messages.Task, sums *layout.SumsWriter, index *layout.FileIndexWriter, plain *layout.PlainSumsWriter, files *layout.FilesSummary) error {
	files.DefaultMode = layout.FormatMode(layout.DefaultFileMode)
	for _, t := range tasks {
		if t.Copy == nil {
			continue
		}
		rc, _, err := dest.Open(ctx, t.Copy.Sums)
		if err != nil {
			return fmt.Errorf("read hashes of task %s: %w", t.ID, err)
		}
		err = messages.ReadFileList(rc, func(e messages.FileEntry) error {
			if e.Changed {
				files.ChangedDuringBackup = append(files.ChangedDuringBackup, e.Path)
			}
			files.RecordMode(e.Path, fs.FileMode(e.Mode))
			if e.Plain != "" {
				if err := plain.Add(e.Path, e.Plain); err != nil {
					return err
				}
			}
			if err := index.Add(e); err != nil {
				return err
			}
			return sums.Add(e.Path, e.SHA256)
		})
		rc.Close()
		if err != nil {
			return fmt.Errorf("read hashes of task %s: %w", t.ID, err)
		}
	}
	return nil
}

// removeTempFiles removes the storage package's temporary files under dir: only names it
// gives (storage.IsTempName), never a platform file that merely starts like one. A zero since
// takes every such file (a staging area is the run's own); otherwise only those made or
// changed since then (their inode change time, which nothing sets back; the modification time
// where the system gives none), so that a restore removes what its own killed workers left
// and never a file of that name the platform held before it. It returns the files removed.
func removeTempFiles(dir string, since time.Time) ([]string, error) {
	var removed []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !storage.IsTempName(d.Name()) {
			return nil
		}
		if !since.IsZero() {
			fi, err := d.Info()
			if err != nil || madeBefore(fi, since) {
				return nil
			}
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove abandoned %s: %w", p, err)
		}
		removed = append(removed, p)
		return nil
	})
	return removed, err
}

// madeBefore tells whether the file fi describes was last made or changed before t.
func madeBefore(fi fs.FileInfo, t time.Time) bool {
	changed := storage.ChangeTime(fi)
	if changed.IsZero() {
		changed = fi.ModTime()
	}
	return changed.Before(t)
}

func topPrefix(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i+1]
	}
	return ""
}

func selectedLabels(labels []string) []string {
	if len(labels) == 0 {
		return nil
	}
	ms, err := platform.Default.Select(labels)
	if err != nil {
		return labels
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Label
	}
	return out
}

// checkReadableRoot fails early, naming the folder, when a local storage root is missing.
func checkReadableRoot(u string) error {
	p := storage.LocalPath(u)
	if strings.Contains(p, "://") {
		return nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("storage folder %s: %w", p, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("storage folder %s is not a folder", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("storage folder %s: %w", p, err)
	}
	return f.Close()
}

// Progress receives a run's progress; package progress shows it to a person.
type Progress interface {
	Total(phase string, n int64)
	Add(phase string, n int64)
}

func totalBytes(ms []ModelReport) int64 {
	var n int64
	for _, m := range ms {
		n += m.Bytes
	}
	return n
}

// writeObject writes a small file of the backup (synced to disk by the local driver's commit).
// writeSums streams SHA256SUMS into dest (a backup of millions of files has a manifest of
// hundreds of megabytes) and returns its sha256.
func writeSums(ctx context.Context, dest *storage.Bucket, sums *layout.SumsWriter) (string, error) {
	h := sha256.New()
	pr, pw := io.Pipe()
	go func() {
		_, err := sums.WriteTo(io.MultiWriter(h, pw))
		pw.CloseWithError(err)
	}()
	_, err := dest.PutLowMemory(ctx, layout.FileSums, pr, storage.Object{Mode: layout.FileMode})
	pr.CloseWithError(errors.New("stopped")) // ends the writer, if Put failed before the end
	if err != nil {
		return "", fmt.Errorf("write %s: %w", layout.FileSums, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeObject(ctx context.Context, dest *storage.Bucket, name string, data []byte, mode os.FileMode) error {
	if _, err := dest.Put(ctx, name, bytes.NewReader(data), storage.Object{Mode: mode}); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// snapshotDir is where a SQLite snapshot copy goes: the local staging folder (same disk as the
// backups, which must hold that much anyway), else a temporary folder named after its owner
// process, which the next run sweeps if this one is killed. An encrypted backup's staging
// folder never holds plaintext, so its snapshot goes to the temporary folder too.
func snapshotDir(d destination, encrypted bool) (string, error) {
	if l, ok := d.(*localDestination); ok && !encrypted {
		dir := filepath.Join(l.Location(), internalDir, "snapshot")
		return dir, os.MkdirAll(dir, 0o700)
	}
	return scratch.MkdirTemp("", "wnb-snapshot-") // swept by the next run if this one is killed
}

// sumsMemory is about what the manifest's entries may hold in memory before they are sorted
// into a run on disk: a backup of millions of files is merged from runs. Up to three such
// sorts are open at once (manifest, index, plain sums; planner and base index), so their
// budgets add up in the peak heap; runs of 4 MiB keep a million files to a few dozen runs.
const sumsMemory = 4 << 20

// sumsBudget is sumsMemory, or the test hook WNB_TEST_SUMS_MEMORY (bytes), which makes a
// small backup spill many runs.
func sumsBudget() int {
	if n, err := strconv.Atoi(os.Getenv("WNB_TEST_SUMS_MEMORY")); err == nil && n > 0 {
		return n
	}
	return sumsMemory
}

// newSumsWriter returns the manifest writer of a backup, which sorts its entries in runs on
// the local staging folder's disk, else in a temporary folder named after its owner process;
// cleanup removes them.
func newSumsWriter(d destination) (*layout.SumsWriter, func(), error) {
	var dir string
	var err error
	if l, ok := d.(*localDestination); ok {
		dir = filepath.Join(l.Location(), internalDir, "sums-runs")
		err = os.MkdirAll(dir, 0o700)
	} else {
		dir, err = scratch.MkdirTemp("", "wnb-sums-")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("checksum runs: %w", err)
	}
	sw := layout.NewSpillingSumsWriter(dir, sumsBudget())
	return sw, func() {
		sw.Close()
		os.RemoveAll(dir)
	}, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
