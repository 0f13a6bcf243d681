// Package roundtrip is `test-backup-restore`: it backs a platform up through the full pipeline,
// restores the backup into scratch targets, and compares every row and every file.
//
// It never writes to the platform it checks: the backup only reads, and the restore goes to a
// scratch database (a temporary database on the same PostgreSQL server, or a temporary SQLite
// file) and a temporary storage folder, all removed afterwards.
package roundtrip

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/fixture"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/pipeline"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/storage"
	"github.com/webnovel/webnovel-backup/workers"
)

// maxDifferences bounds the differences a report lists.
const maxDifferences = 100

// Options configure a round trip.
type Options struct {
	// DatabaseURL and StorageURL name the platform to check; an empty DatabaseURL generates a
	// sample platform (Sample) instead.
	DatabaseURL string
	StorageURL  string
	// ScratchDatabase is where the restore goes; empty makes one beside DatabaseURL.
	ScratchDatabase string
	Sample          demo.Options
	Workers         int
	TempDir         string
	Logger          *slog.Logger
	// StallTimeout, when set, is the coordinators' Coordinator.StallTimeout (0 waits for
	// ever); nil keeps coordinator.DefaultStallTimeout.
	StallTimeout *time.Duration
	// LockTimeout is the backup's and the restore's lock timeout (0: the default).
	LockTimeout time.Duration
	// Identities, when set, encrypt the backup to their public keys and decrypt it in the
	// restore and the comparison; Passphrase instead makes it a passphrase backup.
	Identities *encryption.Identities
	Passphrase string
}

// workerStall is the in-process workers' stall timeout: the coordinators' when set.
func (o Options) workerStall() time.Duration {
	if o.StallTimeout != nil {
		return *o.StallTimeout
	}
	return workers.DefaultStallTimeout
}

// configure applies the options' coordinator settings to a session's coordinator.
func (o Options) configure(s *pipeline.Session) {
	if o.StallTimeout != nil {
		s.Coordinator.StallTimeout = *o.StallTimeout
	}
}

// Timing is how long one phase took.
type Timing struct {
	Phase string
	Took  time.Duration
}

// Report is a round trip's outcome.
type Report struct {
	Pass      bool
	Generated bool
	// Encrypted says the backup was encrypted (age).
	Encrypted   bool
	Rows        int64
	Files       int64
	Differences []string
	// Warnings are the backup's: what it did not keep as it is (a column it does not know,
	// a symlink, a broken reference). The restore cannot bring back what
	// the backup did not hold, so the comparison does not see them: they are shown with the
	// verdict.
	Warnings []string
	Timings  []Timing
}

func (r *Report) differ(format string, args ...any) {
	if len(r.Differences) < maxDifferences {
		r.Differences = append(r.Differences, fmt.Sprintf(format, args...))
	}
}

// Run performs the round trip. An error means it could not be carried out; differences found
// make Pass false.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	tmp, err := scratch.MkdirTemp(o.TempDir, "wnb-roundtrip-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rep := &Report{}
	phase := func(name string, start time.Time) {
		rep.Timings = append(rep.Timings, Timing{name, time.Since(start)})
	}

	if o.DatabaseURL == "" {
		start := time.Now()
		if err := generate(ctx, &o, tmp); err != nil {
			return nil, err
		}
		rep.Generated = true
		phase("generate", start)
	}

	// Back up (reads only).
	start := time.Now()
	backup, err := runBackup(ctx, o, log, filepath.Join(tmp, "backups"))
	if err != nil {
		return nil, err
	}
	rep.Warnings = backup.Warnings
	phase("backup", start)

	start = time.Now()
	scratchURL, dropScratch, err := restoreIntoScratch(ctx, o, log, backup.Path, tmp)
	if dropScratch != nil {
		defer dropScratch()
	}
	if err != nil {
		return nil, err
	}
	phase("restore", start)

	start = time.Now()
	if err := compare(ctx, o, rep, backup.Path, scratchURL, tmp); err != nil {
		return nil, err
	}
	phase("compare", start)
	for _, m := range backup.Models {
		rep.Rows += m.Rows
	}
	rep.Files = backup.Files
	rep.Pass = len(rep.Differences) == 0
	return rep, nil
}

// generate fills a sample platform in tmp and points o at it.
func generate(ctx context.Context, o *Options, tmp string) error {
	o.DatabaseURL = "sqlite:///" + filepath.Join(tmp, "platform.sqlite3")
	o.StorageURL = filepath.Join(tmp, "platform-media")
	if _, err := demo.Fill(ctx, o.DatabaseURL, o.StorageURL, o.Sample); err != nil {
		return fmt.Errorf("generate sample platform: %w", err)
	}
	return nil
}

// restoreIntoScratch restores the backup into a scratch database (o.ScratchDatabase, or one
// made beside the platform's, which drop removes) and a scratch storage folder in tmp
// (scratchMedia).
func restoreIntoScratch(ctx context.Context, o Options, log *slog.Logger, backupPath, tmp string) (scratchURL string, drop func(), err error) {
	scratchURL = o.ScratchDatabase
	if scratchURL == "" {
		var b [4]byte
		rand.Read(b[:])
		s, err := database.CreateScratch(ctx, o.DatabaseURL, "wnb_scratch_"+hex.EncodeToString(b[:]), tmp)
		if err != nil {
			return "", nil, err
		}
		drop = func() { s.Drop(context.WithoutCancel(ctx)) }
		scratchURL = s.URL
	} else if err := applySchema(ctx, scratchURL); err != nil {
		return "", nil, err
	}
	if err := markScratchMigrated(ctx, scratchURL, backupPath); err != nil {
		return "", drop, err
	}
	return scratchURL, drop, runRestore(ctx, o, log, backupPath, scratchURL, scratchMedia(tmp))
}

// scratchMedia is the scratch storage folder in tmp.
func scratchMedia(tmp string) string { return filepath.Join(tmp, "scratch-media") }

// compare checks the restored rows and files against the backup, and, for a generated
// platform (which nothing changes meanwhile), the backup against the platform itself.
func compare(ctx context.Context, o Options, rep *Report, backupPath, scratchURL, tmp string) error {
	dir, err := plainBackup(ctx, o, backupPath, filepath.Join(tmp, "plain"), rep)
	if err != nil {
		return err
	}
	if err := CompareDatabase(ctx, rep, dir, scratchURL, "restored database"); err != nil {
		return err
	}
	if err := CompareFiles(ctx, rep, filepath.Join(dir, layout.FilesDir), scratchMedia(tmp), "restored storage"); err != nil {
		return err
	}
	if !rep.Generated {
		return nil
	}
	if err := CompareDatabase(ctx, rep, dir, o.DatabaseURL, "platform database"); err != nil {
		return err
	}
	return CompareFiles(ctx, rep, filepath.Join(dir, layout.FilesDir), o.StorageURL, "platform storage")
}

func runBackup(ctx context.Context, o Options, log *slog.Logger, dir string) (*coordinator.BackupReport, error) {
	s, err := pipeline.Start(ctx, pipeline.Config{Workers: o.Workers, DatabaseURL: o.DatabaseURL, StorageURL: o.StorageURL, Logger: log, StallTimeout: o.workerStall()})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	o.configure(s)
	bo := coordinator.BackupOptions{
		DatabaseURL: o.DatabaseURL, StorageURL: o.StorageURL, BackupDir: dir, Workers: o.Workers, LockTimeout: o.LockTimeout,
		Passphrase: o.Passphrase,
	}
	if o.Identities != nil && o.Passphrase == "" {
		if bo.Recipients, err = o.Identities.Recipients(); err != nil {
			return nil, fmt.Errorf("encrypt the backup to the identities' keys: %w", err)
		}
	}
	return s.Coordinator.Backup(ctx, bo)
}

func runRestore(ctx context.Context, o Options, log *slog.Logger, backup, dbURL, media string) error {
	ids, err := backupKeys(ctx, o, backup)
	if err != nil {
		return err
	}
	s, err := pipeline.Start(ctx, pipeline.Config{Workers: o.Workers, DatabaseURL: dbURL, StorageURL: media, Logger: log, Identities: ids, StallTimeout: o.workerStall()})
	if err != nil {
		return err
	}
	defer s.Close()
	o.configure(s)
	_, err = s.Coordinator.Restore(ctx, coordinator.RestoreOptions{
		Source: backup, DatabaseURL: dbURL, StorageURL: media, TempDir: o.TempDir, LockTimeout: o.LockTimeout,
		Identities: ids,
	})
	return err
}

// markScratchMigrated records in the scratch database the migrations the backup recorded:
// its schema is this tool's for the backup's models, not `migrate`'s, so its own rows would
// make the restore's migration check refuse a backup of a platform that is further on.
func markScratchMigrated(ctx context.Context, url, backup string) error {
	meta, err := layout.ReadMetadata(backup)
	if err != nil || meta.Migrations == nil {
		return err
	}
	db, err := database.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("scratch database: %w", err)
	}
	defer db.Close()
	return db.RecordMigrations(ctx, meta.Migrations)
}

func applySchema(ctx context.Context, url string) error {
	db, err := database.Create(ctx, url)
	if err != nil {
		return fmt.Errorf("scratch database: %w", err)
	}
	defer db.Close()
	return db.ApplySchema(ctx)
}

// CompareDatabase exports every model the backup holds from dbURL and compares it, object by
// object and field by field, with the backup's fixture.
func CompareDatabase(ctx context.Context, rep *Report, dir, dbURL, what string) error {
	meta, err := layout.ReadMetadata(dir)
	if err != nil {
		return err
	}
	db, err := database.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, e := range meta.Models {
		m, ok := platform.Default.Model(e.Label)
		if !ok {
			return fmt.Errorf("backup lists unknown model %s", e.Label)
		}
		var buf bytes.Buffer
		f := fixture.Format{Indent: meta.FixtureIndent}
		buf.WriteString(f.Open())
		n, err := db.Export(ctx, "", m, database.Range{}, f, &buf)
		if err != nil {
			return fmt.Errorf("export %s from %s: %w", m.Label, what, err)
		}
		buf.WriteString(f.Close())
		if n == 0 {
			buf.Reset()
			buf.WriteString(f.Empty())
		}
		want, err := storage.OpenRegular(filepath.Join(dir, e.File))
		if err != nil {
			return err
		}
		err = compareFixture(rep, what, m.Label, want, &buf)
		want.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// compareFixture compares two fixtures of one model, both in pk order.
func compareFixture(rep *Report, what, label string, want, got io.Reader) error {
	wr, gr := fixture.NewReader(want), fixture.NewReader(got)
	for {
		w, werr := wr.Next()
		g, gerr := gr.Next()
		if werr != nil && werr != io.EOF {
			return fmt.Errorf("read backup fixture of %s: %w", label, werr)
		}
		if gerr != nil && gerr != io.EOF {
			return fmt.Errorf("read %s's %s: %w", what, label, gerr)
		}
		switch {
		case werr == io.EOF && gerr == io.EOF:
			return nil
		case werr == io.EOF:
			rep.differ("%s: %s pk %s is not in the backup", what, label, g.PK)
			continue
		case gerr == io.EOF:
			rep.differ("%s: %s pk %s is missing", what, label, w.PK)
			continue
		}
		if !sameJSON(w.PK, g.PK) {
			rep.differ("%s: %s: backup has pk %s where it has pk %s", what, label, w.PK, g.PK)
			return nil // out of step: the rest would all differ
		}
		gf := map[string]json.RawMessage{}
		for _, f := range g.Fields {
			gf[f.Name] = f.Value
		}
		for _, f := range w.Fields {
			if v, ok := gf[f.Name]; !ok || !sameJSON(f.Value, v) {
				rep.differ("%s: %s pk %s field %s: backup %s, found %s", what, label, w.PK, f.Name, clip(f.Value), clip(v))
			}
		}
	}
}

// sameJSON compares two JSON values by meaning: object key order may differ between engines.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var x, y any
	da, db := json.NewDecoder(bytes.NewReader(a)), json.NewDecoder(bytes.NewReader(b))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&x) != nil || db.Decode(&y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// CompareFiles compares two storage trees key by key: size, content hash, permissions.
// Differences go into rep, described as being in what. Each side is walked once and each key
// looked up on the other, so memory does not grow with the number of files.
func CompareFiles(ctx context.Context, rep *Report, wantDir, gotURL, what string) error {
	want, err := storage.Open(ctx, wantDir)
	if err != nil {
		return err
	}
	defer want.Close()
	got, err := storage.Open(ctx, gotURL)
	if err != nil {
		return err
	}
	defer got.Close()
	// A backup's copies are all 0600; the files' own permissions are in its metadata.
	modeOf := func(string) (fs.FileMode, bool) { return 0, false }
	var folders *layout.FolderSummary
	if meta, err := layout.ReadMetadata(filepath.Dir(wantDir)); err == nil {
		modeOf, folders = meta.Files.RecordedModes(), meta.Files.Folders
	}
	err = want.Walk(ctx, "", func(o storage.Object) error {
		if m, ok := modeOf(layout.FilesDir + "/" + o.Key); ok {
			o.Mode = m
		}
		g, err := got.Stat(ctx, o.Key)
		if errors.Is(err, storage.ErrNotExist) {
			rep.differ("%s: file %s is missing", what, o.Key)
			return nil
		} else if err != nil {
			return err
		}
		if g.Size != o.Size || (o.Mode != 0 && g.Mode != 0 && g.Mode != o.Mode) {
			rep.differ("%s: file %s: backup %d bytes mode %v, found %d bytes mode %v", what, o.Key, o.Size, o.Mode, g.Size, g.Mode)
			return nil
		}
		ws, err := hashKey(ctx, want, o.Key)
		if err != nil {
			return err
		}
		gs, err := hashKey(ctx, got, o.Key)
		if err != nil {
			return err
		}
		if ws != gs {
			rep.differ("%s: file %s: content differs", what, o.Key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = got.Walk(ctx, "", func(o storage.Object) error {
		_, err := want.Stat(ctx, o.Key)
		if errors.Is(err, storage.ErrNotExist) {
			rep.differ("%s: file %s is not in the backup", what, o.Key)
			return nil
		}
		return err
	})
	if err == nil {
		compareFolders(rep, folders, gotURL, what)
	}
	return err
}

// compareFolders checks that a local storage has the folders the backup records: each empty
// folder, and each folder with its recorded permissions.
func compareFolders(rep *Report, f *layout.FolderSummary, gotURL, what string) {
	dir := storage.LocalPath(gotURL)
	if strings.Contains(dir, "://") {
		return // S3: no folders to compare
	}
	folder := func(key string) fs.FileInfo {
		fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil || !fi.IsDir() {
			rep.differ("%s: folder %s is missing", what, key)
			return nil
		}
		return fi
	}
	_ = f.Each(func(key string) error {
		folder(key)
		return nil
	}, func(key string, mode fs.FileMode) error {
		if fi := folder(key); fi != nil && fi.Mode().Perm() != mode {
			rep.differ("%s: folder %s: backup mode %v, found mode %v", what, key, mode, fi.Mode().Perm())
		}
		return nil
	})
}

func hashKey(ctx context.Context, b *storage.Bucket, key string) (string, error) {
	r, _, err := b.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	sum, _, err := layout.HashReader(ctx, r)
	return sum, err
}
