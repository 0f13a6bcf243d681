// Package verify checks a backup folder or archive without restoring it: its metadata is
// complete, every file matches SHA256SUMS (an object-store backup's files: their objects),
// every fixture parses and holds only its model's objects, and the row and file counts match
// what the metadata records. It also repeats the database ↔ storage cross-check: a row naming
// a file the backup lacks is a warning (the platform was broken), not a problem.
//
// Problems found in the backup go in the Report; an error means the check could not run.
package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/storage"
)

// Names of the checks, in the order a Report lists them. CheckArchive comes first, and only
// for an archive.
const (
	CheckArchive   = "archive"
	CheckMetadata  = "metadata"
	CheckChecksums = "checksums"
	CheckFixtures  = "fixtures"
	CheckRows      = "rows"
	CheckFiles     = "files"
)

// WarnNoSums is the warning for a backup without SHA256SUMS (the Python command writes none).
const WarnNoSums = "no " + layout.FileSums + ": integrity cannot be verified"

// Options tune Verify.
type Options struct {
	// Workers is how many files are hashed and parsed in parallel (default runtime.NumCPU()).
	Workers int
	// TempDir is where an archive is extracted (default: the system temporary folder).
	TempDir string
	// RequireChecksums makes a backup without SHA256SUMS a problem even when the Python
	// command wrote it (a backup this tool wrote must always have one).
	RequireChecksums bool
	// Objects is the location (folder or s3:// URL) of the destination root whose object
	// store holds an object-store backup's files; empty: the folder holding the backup.
	Objects string
	// Decrypt checks an encrypted backup's content end to end (--decrypt): every fixture and
	// file is decrypted with Identities (or, for a passphrase backup, the key Passphrase
	// opens) and its plaintext checked against the backup's manifest of plaintext sums, and
	// the fixtures are parsed. Without it an encrypted backup's stored bytes are checked, which
	// needs no key.
	Decrypt    bool
	Identities *encryption.Identities
	Passphrase string
}

// Report is the outcome of verifying one backup.
type Report struct {
	Path string `json:"path"`
	OK   bool   `json:"ok"`
	// Format is the metadata's format_version (0: written by the Python command; -1: no
	// readable metadata).
	Format int    `json:"format"`
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	// Checks has one entry per check, in order: metadata, checksums, objects (an object-store
	// backup only), fixtures, rows, files, references, preceded by archive for an archive. An
	// archive that cannot be extracted has only that.
	Checks []Check `json:"checks"`
	// Problems lists every problem found, each naming the file, model or field.
	Problems []string `json:"problems"`
	// Warnings are doubts that do not fail the backup (a Python backup without checksums).
	Warnings []string `json:"warnings"`
	// Models has one entry per fixture checked, in the metadata's order.
	Models []ModelCheck `json:"models"`
	// Files and Bytes count the storage files found under files/ (an object-store backup's:
	// listed in its file index).
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
	// References is the database ↔ storage cross-check repeated from the backup's fixtures
	// and files (nil without metadata); a missing file is a warning, not a problem.
	References *layout.References `json:"references,omitempty"`
	// Duration is how long the verification took, extraction included.
	Duration time.Duration `json:"-"`
	// Migrations is the backup's record of its applied Django migrations (Recorded false
	// for a backup without one), compared with a database when the caller asked for it.
	Migrations *database.MigrationCheck `json:"migrations,omitempty"`
}

// Check is the outcome of one check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ModelCheck is one fixture file as found.
type ModelCheck struct {
	Label string `json:"label"`
	File  string `json:"file"`
	// Rows is the number of objects read from the file (up to the first error).
	Rows int64 `json:"rows"`
	// MetadataRows is the metadata's row count, -1 when it records none (Python backups).
	MetadataRows int64 `json:"metadata_rows"`
	// OK is false when the file is missing, unreadable, holds a wrong or duplicate object, or
	// its row count differs from the metadata's.
	OK bool `json:"ok"`
}

// MarshalJSON writes the report with duration_seconds and empty lists as [], so that the keys
// are the same for every report.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	c := plain(r)
	if c.Checks == nil {
		c.Checks = []Check{}
	}
	if c.Problems == nil {
		c.Problems = []string{}
	}
	if c.Warnings == nil {
		c.Warnings = []string{}
	}
	if c.Models == nil {
		c.Models = []ModelCheck{}
	}
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"duration_seconds"`
	}{c, r.Duration.Seconds()})
}

// Verify verifies the backup at path: a backup folder or a .tar.gz archive of one. An archive is
// extracted into a private temporary folder (in o.TempDir), which is removed afterwards.
//
// The error is for what stops the verification from running: path missing, an archive refused
// as unsafe (the error names the entry), ctx cancelled. A corrupt or truncated archive is a
// problem in the Report.
func Verify(ctx context.Context, path string, o Options) (*Report, error) {
	release, err := layout.Hold(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer release()
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if fi.IsDir() {
		return VerifyDir(ctx, path, o)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("verify %s: not a folder or an archive (%v)", path, fi.Mode().Type())
	}
	if IsEncryptedArchive(path) {
		ids, err := archiveIdentities(o)
		if err != nil {
			return nil, err
		}
		return VerifyEncryptedArchive(ctx, path, ids, o)
	}
	return verifyArchive(ctx, path, o)
}

func verifyArchive(ctx context.Context, path string, o Options) (rep *Report, err error) {
	f, err := storage.OpenRegular(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	return verifyArchiveFrom(ctx, path, f, o, time.Now())
}

// verifyArchiveFrom verifies the archive path whose bytes r reads (decrypted, for an
// encrypted one).
func verifyArchiveFrom(ctx context.Context, path string, r io.Reader, o Options, start time.Time) (rep *Report, err error) {
	tmp, err := scratch.MkdirTemp(o.TempDir, "wnb-verify-")
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			rep, err = nil, fmt.Errorf("verify %s: remove temporary folder: %w", path, rerr)
		}
	}()
	top, err := archive.Extract(ctx, r, tmp)
	name := filepath.Base(path)
	switch {
	case errors.Is(err, archive.ErrUnsafe):
		return nil, fmt.Errorf("verify %s: %w", path, err)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("verify %s: %w", path, ctx.Err())
	case err != nil:
		// Corrupt or truncated: the backup is bad, which is what verify reports.
		rep := &Report{Path: path, Format: -1}
		rep.Checks = []Check{{Name: CheckArchive, Detail: "cannot extract"}}
		rep.Problems = []string{fmt.Sprintf("%s: %v", name, err)}
		if errors.Is(err, archive.ErrNotArchive) {
			rep.Problems = []string{fmt.Sprintf("%s is neither a backup folder nor a backup archive (.tar.gz, .tar.zst or .tar): %v", path, err)}
		}
		rep.Duration = time.Since(start)
		return rep, nil
	}
	rep, err = verifyDir(ctx, filepath.Join(tmp, top), o, start)
	if err != nil {
		// Named by the archive: the temporary path means nothing to the caller.
		return nil, fmt.Errorf("verify %s: %w", path, err)
	}
	rep.Path = path
	archiveCheck := Check{Name: CheckArchive, OK: true, Detail: "extracted " + top + "/"}
	if want, _ := layout.TrimArchiveExt(name); layout.IsBackupName(name) && top != want {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: holds folder %s/, not %s/", name, top, want))
	}
	rep.Checks = append([]Check{archiveCheck}, rep.Checks...)
	rep.Duration = time.Since(start)
	return rep, nil
}

// VerifyDir verifies the backup folder dir. See Verify.
func VerifyDir(ctx context.Context, dir string, o Options) (*Report, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("verify %s: not a folder", dir)
	}
	rep, err := verifyDir(ctx, dir, o, time.Now())
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	return rep, nil
}

func verifyDir(ctx context.Context, dir string, o Options, start time.Time) (*Report, error) {
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	spill, err := scratch.MkdirTemp(o.TempDir, "wnb-verify-sort-")
	if err != nil {
		return nil, fmt.Errorf("sort folder: %w", err)
	}
	defer os.RemoveAll(spill)
	v := &verifier{dir: dir, o: o, rep: &Report{Path: dir, Format: -1}, spill: spill}
	v.checkMetadata()
	if err := v.checkChecksums(ctx); err != nil {
		return nil, err
	}
	defer v.sums.Close()
	if v.objectStore() {
		if err := v.checkObjects(ctx); err != nil {
			return nil, err
		}
	}
	if err := v.checkDecrypted(ctx); err != nil {
		return nil, err
	}
	if err := v.checkFixtures(ctx); err != nil {
		return nil, err
	}
	v.checkRows()
	v.checkFiles()
	if err := v.checkReferences(ctx); err != nil {
		return nil, err
	}

	rep := v.rep
	rep.OK = len(rep.Problems) == 0
	for _, c := range rep.Checks {
		rep.OK = rep.OK && c.OK
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// verifier holds what one verification has found so far.
type verifier struct {
	dir string
	o   Options
	rep *Report

	meta *layout.Metadata // nil if missing or unreadable

	// spill is a private folder for the external sorts' runs.
	spill string
	sums  *layout.Sums // nil without SHA256SUMS; open until the verification ends

	// Found by the checksum walk: regular files outside files/ with their size (fixtures and
	// the like, a handful), the count and bytes of those under files/, and the rest.
	top          map[string]int64
	files, bytes int64
	treeFiles    int
	nonRegular   map[string]bool
	fixture      []fixtureResult

	// plainDir holds an encrypted backup's decrypted fixtures (--decrypt), inside spill;
	// plainBytes counts its files' plaintext.
	plainDir   string
	plainBytes int64
}

// add records the outcome of one check with its problems.
func (v *verifier) add(name string, ok bool, detail string, problems []string) {
	v.rep.Checks = append(v.rep.Checks, Check{Name: name, OK: ok && len(problems) == 0, Detail: detail})
	v.rep.Problems = append(v.rep.Problems, problems...)
}

func (v *verifier) warn(format string, args ...any) {
	v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf(format, args...))
}

func (v *verifier) checkMetadata() {
	// Never open a FIFO or follow a link planted in place of the metadata.
	if err := regular(filepath.Join(v.dir, layout.FileMetadata)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		v.add(CheckMetadata, false, "unreadable", []string{fmt.Sprintf("%s: %v", layout.FileMetadata, err)})
		return
	}
	m, err := layout.ReadMetadata(v.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.add(CheckMetadata, false, "missing", []string{layout.FileMetadata + ": missing: the backup is incomplete"})
		return
	case err != nil:
		// ReadMetadata's error holds the full path; name the file only.
		msg := strings.TrimPrefix(err.Error(), filepath.Join(v.dir, layout.FileMetadata)+": ")
		v.add(CheckMetadata, false, "unreadable", []string{layout.FileMetadata + ": " + msg})
		return
	}
	v.meta = m
	v.rep.Format, v.rep.RunID, v.rep.Status = m.FormatVersion, m.RunID, m.Status
	v.rep.Migrations = database.RecordedMigrations(m.Migrations)
	if m.FormatVersion == 0 {
		v.warn("%s: Python backup (format 0) has no status: taken as complete", layout.FileMetadata)
		v.add(CheckMetadata, true, "format 0 (Python backup), taken at "+layout.FormatTimestamp(m.BackupTimestamp), nil)
		return
	}
	var problems []string
	if m.Status != layout.StatusComplete {
		problems = append(problems, fmt.Sprintf("%s: status %q, want %q", layout.FileMetadata, m.Status, layout.StatusComplete))
	}
	v.add(CheckMetadata, true, fmt.Sprintf("format %d, run %s, status %s", m.FormatVersion, m.RunID, m.Status), problems)
}

// regular returns an error unless name is a regular file (not following a symlink).
func regular(name string) error {
	fi, err := os.Lstat(name)
	if err != nil {
		return pathless(err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	return nil
}

// python reports whether the backup was written by the Python command (or has no metadata to
// say otherwise, in which case the metadata check has failed already).
func (v *verifier) python() bool { return v.meta != nil && v.meta.FormatVersion == 0 }
