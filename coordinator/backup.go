package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/progress"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/internal/telemetry"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// ToolVersion is recorded in every backup's metadata.
var ToolVersion = "0.1.0"

// DefaultChunkRows is the size of one export task. Chunks are written (and synced) once more
// when they are joined, so they pay off only for big tables: on the benchmark data (~100k rows,
// 2 workers) 50k-row chunks took 0.47 s against 0.61 s for 10k-row ones.
const DefaultChunkRows = 50000

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
	// Indent is the fixtures' --indent (0: one object per line).
	Indent int
	// ChunkRows splits larger tables into primary-key ranges of this many rows
	// (DefaultChunkRows when 0).
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
	// Resume finishes the run with this id, whose coordinator died: file copies already done
	// are kept; the database is exported again under a new snapshot (the old one died with its
	// coordinator). The other options are taken from the run's record.
	Resume string
}

// resumable are the options a resumed run takes from its record.
type resumable struct {
	BackupDir    string   `json:"backup_dir"`
	SkipDB       bool     `json:"skip_db"`
	SkipFiles    bool     `json:"skip_files"`
	Models       []string `json:"models,omitempty"`
	Compress     bool     `json:"compress"`
	Indent       int      `json:"indent"`
	ChunkRows    int      `json:"chunk_rows"`
	FilesPerTask int      `json:"files_per_task"`
	BytesPerTask int64    `json:"bytes_per_task"`
	Workers      int      `json:"workers"`
}

// ModelReport is one model's outcome.
type ModelReport struct {
	Label  string
	File   string
	Rows   int64
	Bytes  int64
	SHA256 string
	Chunks int
}

// BackupReport is a finished backup.
type BackupReport struct {
	RunID    string
	Path     string
	Models   []ModelReport
	Files    int64
	Bytes    int64
	Warnings []string
	Duration time.Duration
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

func (c *Coordinator) backup(ctx context.Context, o BackupOptions) (rep *BackupReport, err error) {
	start := time.Now()
	var rec *messages.RunRecord
	if o.Resume != "" {
		if rec, err = c.resumeRecord(ctx, &o); err != nil {
			return nil, fmt.Errorf("backup --resume: %w", err)
		}
		start = rec.Started.Local()
	}
	if o.SkipDB && o.SkipFiles {
		return nil, errors.New("backup: --skip-db and --skip-files leave nothing to back up")
	}
	if o.BackupDir == "" {
		o.BackupDir = "backups"
	}
	if !storage.IsS3(o.BackupDir) {
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
		o.RunID = NewRunID(start)
	}
	run := o.RunID
	log := c.log.With("run", run)
	telemetry.Annotate(ctx, telemetry.KeyRun.String(run))

	var (
		models   []platform.Model
		db       *database.DB
		warnings []string
		src      *storage.Bucket
	)
	if !o.SkipDB {
		if models, err = platform.Default.Select(o.Models); err != nil {
			return nil, fmt.Errorf("backup: --models: %w", err)
		}
		if db, err = database.Open(ctx, o.DatabaseURL); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		defer db.Close()
		w, err := db.CheckSchema(ctx, models)
		if err != nil {
			return nil, fmt.Errorf("backup: database schema: %w", err)
		}
		warnings = append(warnings, w...)
	}
	if !o.SkipFiles {
		if src, err = storage.Open(ctx, o.StorageURL); err != nil {
			return nil, fmt.Errorf("backup: storage: %w", err)
		}
		defer src.Close()
		if err := checkReadableRoot(o.StorageURL); err != nil {
			return nil, fmt.Errorf("backup: storage: %w", err)
		}
	}
	if rec != nil {
		if err := sameSources(rec, db, src); err != nil {
			return nil, fmt.Errorf("backup --resume %s: %w", run, err)
		}
	}

	stage, err := openDestination(ctx, o.BackupDir, run, rec != nil)
	if err != nil {
		return nil, fmt.Errorf("backup: destination %s: %w", o.BackupDir, err)
	}
	defer stage.Close()
	published := false
	defer func() {
		if !published {
			if err := stage.Abort(); err != nil {
				log.Warn("remove staging area", "err", err)
			}
		}
	}()
	dest := stage.Bucket()

	// Record the run, so `runs` shows it and a successor can resume it.
	generation := 0
	if rec != nil {
		generation = rec.Generation + 1
	}
	opts, _ := json.Marshal(resumable{
		BackupDir: o.BackupDir, SkipDB: o.SkipDB, SkipFiles: o.SkipFiles, Models: o.Models, Compress: o.Compress,
		Indent: o.Indent, ChunkRows: o.ChunkRows, FilesPerTask: o.FilesPerTask, BytesPerTask: o.BytesPerTask, Workers: o.Workers,
	})
	record := messages.RunRecord{ID: run, Kind: "backup", Started: start.UTC(), BackupDir: o.BackupDir,
		Staging: stage.Location(), Options: opts, Generation: generation}
	if db != nil {
		record.Database = db.Source().Redacted
	}
	if src != nil {
		record.Storage = src.String()
	}
	track, err := c.track(ctx, record)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		path := ""
		if rep != nil {
			path = rep.Path
		}
		track.finish(path, err)
	}()

	_, planSpan := telemetry.Start(ctx, "backup.plan")
	defer telemetry.EndErr(planSpan, &err) // records a planning failure; a no-op once ended below
	// Plan: file copies once (a resumed run keeps its plan and what is done of it); database
	// exports every time, under a snapshot this coordinator holds.
	suffix := ""
	if generation > 0 {
		suffix = fmt.Sprintf("-r%d", generation)
	}
	var tasks []*messages.Task
	var plannedRows []int64
	plans := map[string][]*messages.Task{} // model label → its export tasks in pk order
	var snap *database.Snapshot
	if db != nil {
		snapDir, err := snapshotDir(stage)
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		defer os.RemoveAll(snapDir)
		if snap, err = db.BeginSnapshot(ctx, snapDir); err != nil {
			return nil, fmt.Errorf("backup: open snapshot: %w", err)
		}
		defer snap.Close()
		for _, m := range models {
			ranges, err := snap.Plan(ctx, m, o.ChunkRows)
			if err != nil {
				return nil, fmt.Errorf("backup: plan %s: %w", m.Label, err)
			}
			if len(ranges) == 0 {
				ranges = []database.Range{{}}
			}
			for i, r := range ranges {
				plannedRows = append(plannedRows, r.Rows)
				id := taskID("export", m.Table, fmt.Sprintf("%04d", i)) + suffix
				t := &messages.Task{
					Version: messages.Version, Run: run, Kind: messages.KindExportModel, Dest: stage.Location(), ID: id,
					Export: &messages.ExportTask{
						Database: db.Source().Redacted, Snapshot: snap.ID(), Model: m.Label,
						Lo: r.Lo, Hi: r.Hi, HasLo: r.HasLo, HasHi: r.HasHi, Indent: o.Indent,
						Whole: len(ranges) == 1,
						// Outputs are named by task, so a late task of a dead coordinator can
						// never overwrite what its successor exported.
						Output: path.Join(internalDir, "exports", id+".json"),
					},
				}
				plans[m.Label] = append(plans[m.Label], t)
				tasks = append(tasks, t)
			}
		}
	}
	var (
		prefixes []string
		done     map[string]*messages.Result
	)
	if src != nil {
		var copies []*messages.Task
		if rec != nil {
			copies, prefixes, done, err = c.resumeCopies(ctx, run, dest, suffix)
		} else {
			copies, prefixes, err = c.planCopies(ctx, run, src, o, dest, stage.Location())
			if err == nil {
				err = savePlan(ctx, dest, copies, prefixes)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("backup: plan files: %w", err)
		}
		tasks = append(tasks, copies...)
	}
	if rec != nil {
		c.purge(run) // what the dead coordinator left queued is re-published under new ids
	}
	if o.Progress != nil {
		var rows, bytes int64
		for _, t := range tasks {
			if t.Copy != nil && done[t.ID] == nil {
				bytes += t.Copy.Bytes
			}
		}
		for _, r := range plannedRows {
			rows += r
		}
		o.Progress.Total(progress.Rows, rows)
		o.Progress.Total(progress.Files, bytes)
	}
	log.Info("backup planned", "models", len(models), "tasks", len(tasks), "already_done", len(done), "staging", stage.Location())
	planSpan.SetAttributes(telemetry.KeyTasks.Int(len(tasks)))
	planSpan.End()

	// Run.
	results, err := c.dispatch(ctx, run, tasks, done, func(r *messages.Result) {
		log.Debug("task done", "task", r.Task, "rows", r.Rows, "files", r.Files, "bytes", r.Bytes, "worker", r.Worker)
		if o.Progress != nil {
			if r.Kind == messages.KindExportModel {
				o.Progress.Add(progress.Rows, r.Rows)
			} else {
				o.Progress.Add(progress.Files, r.Bytes)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if snap != nil {
		snap.Close() // every export has read it
	}
	// A worker killed while writing leaves a temporary file; another worker redid its task,
	// so the leftover is garbage that must not be published.
	if err := stage.Sweep(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}

	// Assemble.
	actx, assembleSpan := telemetry.Start(ctx, "backup.assemble")
	defer telemetry.EndErr(assembleSpan, &err)
	rep = &BackupReport{RunID: run}
	sums := layout.NewSumsWriter()
	meta := &layout.Metadata{
		BackupTimestamp: start,
		DjangoVersion:   layout.DjangoVersion,
		BackupOptions: layout.BackupOptions{
			IncludeFiles: !o.SkipFiles, SkipDB: o.SkipDB, Compress: o.Compress,
			Models: layout.ModelSelection{Labels: selectedLabels(o.Models)},
		},
		ToolVersion: ToolVersion, RunID: run, Status: layout.StatusComplete, TraceID: telemetry.TraceID(ctx),
		Workers: o.Workers, FixtureIndent: o.Indent,
		StorageBackend: layout.StorageFileSystem,
	}
	if db != nil {
		meta.DatabaseEngine = db.Source().DjangoEngine()
		meta.Database = db.Source().Redacted
	}
	if src != nil {
		meta.StorageBackend = src.Backend()
		meta.Storage = src.String()
	}
	for _, m := range models {
		mr, err := c.assembleModel(actx, dest, m, o.Indent, plans[m.Label], results)
		if err != nil {
			return nil, fmt.Errorf("backup: assemble %s: %w", m.Label, err)
		}
		rep.Models = append(rep.Models, *mr)
		meta.Models = append(meta.Models, layout.ModelEntry{Label: m.Label, File: mr.File, Rows: mr.Rows, SHA256: mr.SHA256})
		if err := sums.Add(mr.File, mr.SHA256); err != nil {
			return nil, err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(results)) {
		r := results[id]
		warnings = append(warnings, r.Warnings...)
		if r.Kind == messages.KindCopyPrefix {
			rep.Files += r.Files
			rep.Bytes += r.Bytes
		}
	}
	if src != nil {
		if err := c.collectSums(ctx, dest, tasks, sums); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	meta.Files = layout.FilesSummary{Count: rep.Files, Bytes: rep.Bytes, Prefixes: prefixes}

	script := layout.RestoreScript(meta)
	if err := writeObject(ctx, dest, layout.FileRestore, script, 0o755); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := sums.Add(layout.FileRestore, sha256Hex(script)); err != nil {
		return nil, err
	}
	if err := dest.RemoveAll(ctx, internalDir); err != nil {
		return nil, fmt.Errorf("backup: remove working files: %w", err)
	}
	if meta.ManifestSHA256, err = writeSums(ctx, dest, sums); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	meta.Warnings = warnings
	rep.Warnings = warnings
	meta.DurationSeconds = time.Since(start).Seconds()
	mdata, err := meta.Marshal()
	if err != nil {
		return nil, fmt.Errorf("backup: metadata: %w", err)
	}
	// The metadata is written last: a folder without it is an incomplete backup.
	if err := writeObject(ctx, dest, layout.FileMetadata, mdata, 0o644); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("backup interrupted: %w", err)
	}
	assembleSpan.SetAttributes(telemetry.KeyFiles.Int64(rep.Files), telemetry.KeyBytes.Int64(rep.Bytes))
	assembleSpan.End()

	pctx, publishSpan := telemetry.Start(ctx, "backup.publish", attribute.Bool("wnb.compress", o.Compress))
	defer telemetry.EndErr(publishSpan, &err)
	var aopts []archive.Option
	if o.Compress && o.Progress != nil {
		o.Progress.Total(progress.Archive, rep.Bytes+totalBytes(rep.Models))
		aopts = append(aopts, archive.WithProgress(func(n int64) { o.Progress.Add(progress.Archive, n) }))
	}
	rep.Path, err = stage.Publish(pctx, start, o.Compress, aopts...)
	if err != nil {
		return nil, fmt.Errorf("backup: publish: %w", err)
	}
	published = true
	publishSpan.End()
	rep.Duration = time.Since(start)
	log.Info("backup complete", "path", rep.Path, "models", len(rep.Models), "files", rep.Files, "bytes", rep.Bytes, "took", rep.Duration.Round(time.Millisecond))
	return rep, nil
}

// resumeRecord loads the record of the run to resume, checks that it can be resumed, and
// takes its options.
func (c *Coordinator) resumeRecord(ctx context.Context, o *BackupOptions) (*messages.RunRecord, error) {
	rec, err := c.RunRecord(ctx, o.Resume)
	if err != nil {
		return nil, err
	}
	if rec.Kind != "backup" {
		return nil, fmt.Errorf("run %s is a %s, not a backup", rec.ID, rec.Kind)
	}
	switch state := rec.Shown(time.Now()); state {
	case messages.RunAbandoned:
	case messages.RunRunning:
		return nil, fmt.Errorf("run %s is still running (coordinator %s, last heartbeat %s ago)", rec.ID, rec.Coordinator, time.Since(rec.Heartbeat).Round(time.Second))
	default:
		return nil, fmt.Errorf("run %s is %s: only an abandoned run can be resumed", rec.ID, state)
	}
	var r resumable
	if err := json.Unmarshal(rec.Options, &r); err != nil {
		return nil, fmt.Errorf("run %s: options: %w", rec.ID, err)
	}
	o.RunID = rec.ID
	o.BackupDir, o.SkipDB, o.SkipFiles, o.Models, o.Compress = r.BackupDir, r.SkipDB, r.SkipFiles, r.Models, r.Compress
	o.Indent, o.ChunkRows, o.FilesPerTask, o.BytesPerTask = r.Indent, r.ChunkRows, r.FilesPerTask, r.BytesPerTask
	if o.Workers == 0 {
		o.Workers = r.Workers
	}
	return rec, nil
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
}

func savePlan(ctx context.Context, dest *storage.Bucket, tasks []*messages.Task, prefixes []string) error {
	data, err := json.Marshal(savedPlan{Prefixes: prefixes, Tasks: tasks})
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
// written are done; the others get new ids (suffix) so they are published afresh.
func (c *Coordinator) resumeCopies(ctx context.Context, run string, dest *storage.Bucket, suffix string) ([]*messages.Task, []string, map[string]*messages.Result, error) {
	r, _, err := dest.Open(ctx, planFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the run's plan: %w", err)
	}
	var p savedPlan
	err = json.NewDecoder(r).Decode(&p)
	r.Close()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read the run's plan: %w", err)
	}
	results, err := c.js.Stream(ctx, messages.StreamResults)
	if err != nil {
		return nil, nil, nil, err
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
			return nil, nil, nil, fmt.Errorf("read result of %s: %w", t.ID, err)
		}
		t.ID = base + suffix
		t.Copy.Sums = path.Join(internalDir, "sums", t.ID+".jsonl")
	}
	return p.Tasks, p.Prefixes, done, nil
}

// assembleModel puts a model's fixture in place: a single-task model's output is renamed,
// chunks are joined.
func (c *Coordinator) assembleModel(ctx context.Context, dest *storage.Bucket, m platform.Model, indent int, tasks []*messages.Task, results map[string]*messages.Result) (*ModelReport, error) {
	mr := &ModelReport{Label: m.Label, File: m.FixtureName(), Chunks: len(tasks)}
	for _, t := range tasks {
		mr.Rows += results[t.ID].Rows
	}
	if len(tasks) == 1 {
		r := results[tasks[0].ID]
		mr.SHA256, mr.Bytes = r.SHA256, r.Bytes
		if err := dest.Rename(ctx, tasks[0].Export.Output, mr.File); err != nil {
			return nil, err
		}
		return mr, nil
	}
	var readers []io.Reader
	for _, t := range tasks {
		rc, _, err := dest.Open(ctx, t.Export.Output)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		readers = append(readers, rc)
	}
	w, err := dest.Create(ctx, mr.File, storage.Object{Mode: 0o644})
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	h := sha256.New()
	n, err := fixture.Join(io.MultiWriter(w, h), fixture.Format{Indent: indent}, readers...)
	if err != nil {
		return nil, err
	}
	if err := w.Commit(); err != nil {
		return nil, err
	}
	mr.Bytes, mr.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	return mr, nil
}

// planCopies lists the storage once and cuts it into copy tasks of similar size: one or more
// per top-level prefix (content/, images/, media/, and whatever else the storage holds, so
// nothing is silently left out). Each task's key list is written to the destination.
func (c *Coordinator) planCopies(ctx context.Context, run string, src *storage.Bucket, o BackupOptions, dest *storage.Bucket, destURL string) ([]*messages.Task, []string, error) {
	var (
		tasks    []*messages.Task
		prefixes []string
		cur      *messages.Task
		list     strings.Builder
		lw       *messages.FileListWriter
		seq      = map[string]int{}
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		if err := lw.Flush(); err != nil {
			return err
		}
		if _, err := dest.Put(ctx, cur.Copy.KeyList, strings.NewReader(list.String()), storage.Object{Mode: 0o600}); err != nil {
			return err
		}
		tasks = append(tasks, cur)
		cur = nil
		return nil
	}
	err := src.Walk(ctx, "", func(obj storage.Object) error {
		prefix := topPrefix(obj.Key)
		if cur != nil && (cur.Copy.Prefix != prefix || cur.Copy.Keys >= o.FilesPerTask || cur.Copy.Bytes >= o.BytesPerTask) {
			if err := flush(); err != nil {
				return err
			}
		}
		if cur == nil {
			n := seq[prefix]
			seq[prefix]++
			if n == 0 {
				prefixes = append(prefixes, prefix)
			}
			name := strings.TrimSuffix(prefix, "/")
			if name == "" {
				name = "root"
			}
			id := taskID("copy", name, fmt.Sprintf("%04d", n))
			cur = &messages.Task{
				Version: messages.Version, Run: run, ID: id, Kind: messages.KindCopyPrefix, Dest: destURL,
				Copy: &messages.CopyTask{
					Source: o.StorageURL, Prefix: prefix, DestPrefix: layout.FilesDir + "/",
					KeyList: path.Join(internalDir, "keys", id+".jsonl"),
					Sums:    path.Join(internalDir, "sums", id+".jsonl"),
				},
			}
			list.Reset()
			lw = messages.NewFileListWriter(&list)
		}
		cur.Copy.Keys++
		cur.Copy.Bytes += obj.Size
		return lw.Add(messages.FileEntry{Key: obj.Key, Size: obj.Size})
	})
	if err != nil {
		return nil, nil, err
	}
	if err := flush(); err != nil {
		return nil, nil, err
	}
	sort.Strings(prefixes)
	return tasks, prefixes, nil
}

// collectSums adds the per-file hashes the copy tasks wrote to the manifest.
func (c *Coordinator) collectSums(ctx context.Context, dest *storage.Bucket, tasks []*messages.Task, sums *layout.SumsWriter) error {
	for _, t := range tasks {
		if t.Copy == nil {
			continue
		}
		rc, _, err := dest.Open(ctx, t.Copy.Sums)
		if err != nil {
			return fmt.Errorf("read hashes of task %s: %w", t.ID, err)
		}
		err = messages.ReadFileList(rc, func(e messages.FileEntry) error { return sums.Add(e.Path, e.SHA256) })
		rc.Close()
		if err != nil {
			return fmt.Errorf("read hashes of task %s: %w", t.ID, err)
		}
	}
	return nil
}

// removeTempFiles removes the storage package's temporary files under dir.
func removeTempFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), storage.TempPrefix) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove abandoned %s: %w", p, err)
			}
		}
		return nil
	})
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
	p := strings.TrimPrefix(u, "file://")
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
	_, err := dest.Put(ctx, layout.FileSums, pr, storage.Object{Mode: 0o644})
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
// backups, which must hold that much anyway), else a temporary folder.
func snapshotDir(d destination) (string, error) {
	if l, ok := d.(*localDestination); ok {
		dir := filepath.Join(l.Location(), internalDir, "snapshot")
		return dir, os.MkdirAll(dir, 0o700)
	}
	return scratch.MkdirTemp("", "wnb-snapshot-") // swept by the next run if this one is killed
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
