// Package retention lists the backups in a destination (a local folder or an S3 prefix) and
// prunes them with a restic-style policy: keep the last N, the newest of each of the last N
// days, ISO weeks and months that have backups.
//
// What is never deleted: the newest complete backup, a run in progress (a staging folder
// .wnb-staging-<run>/), and an incomplete backup younger than a day (it may still be being
// written). Older incomplete backups are deleted only on request (PruneIncomplete).
//
// A .tar.gz is trusted by its name: archives are published atomically (written under a
// hidden temporary name, then linked to their final one), so an archive named like a backup
// is complete. Reading its metadata means decompressing the archive up to it
// (backup_metadata.json is its first file; the last in older archives), which
// ListOptions.ReadArchives does on request.
package retention

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// Status says whether a backup can be restored.
type Status string

// Statuses of a listed backup.
const (
	// StatusComplete: backup_metadata.json is present with status "complete" (or was written
	// by the Python command, which has no status key), or an archive named like a backup.
	StatusComplete Status = "complete"
	// StatusIncomplete: a backup folder without readable, complete metadata (a crashed
	// publication, a copy cut short), or an archive that could not be read.
	StatusIncomplete Status = "incomplete"
	// StatusInProgress: a staging folder or an archive being written whose owner still runs.
	StatusInProgress Status = "in progress"
	// StatusAbandoned: a staging folder (or an archive being written) whose owner process is
	// gone (same host: its pid no longer runs, or runs a later process; another host: no
	// heartbeat for a while). Nothing writes it any more; prune --prune-incomplete removes it.
	StatusAbandoned Status = "abandoned"
	// StatusUnreadable: a backup folder whose metadata is there but could not be read (a
	// network or permission error): whether it is complete, and which objects it uses, is not
	// known, so it is never removed and the object store is not swept.
	StatusUnreadable Status = "unreadable"
)

// Kind is how a backup is stored.
type Kind string

// Kinds of listed entries.
const (
	KindFolder  Kind = "folder"
	KindArchive Kind = "archive"
	KindStaging Kind = "staging"
)

// archiveTmpPrefix starts the temporary file an archive is written to before it is linked to
// its final name (layout.Staging.PublishArchive).
const archiveTmpPrefix = ".wnb-archive-"

// Backup is one entry of a destination.
type Backup struct {
	Name   string `json:"name"` // base name: backup_20241201_143022, backup_….tar.gz, .wnb-staging-<run>
	Kind   Kind   `json:"kind"`
	Status Status `json:"status"`
	// Time is when the backup was taken: from its name (local time, see ListOptions.Location),
	// or for a staging folder its newest file's modification time.
	Time time.Time `json:"time"`
	// Seq is the name's collision suffix (1 for none, 2 for "-2").
	Seq int `json:"seq"`
	// Size is the bytes stored: the archive's size, or the sum of the folder's files.
	Size int64 `json:"size"`
	// Objects is the number of files stored under the folder (1 for an archive).
	Objects int64 `json:"objects"`
	// ModTime is the newest modification time of what is stored.
	ModTime time.Time `json:"mod_time"`
	// From the metadata, when read: complete folders, and archives with ReadArchives.
	RunID  string `json:"run_id,omitempty"`
	Models int    `json:"models,omitempty"`
	Rows   int64  `json:"rows,omitempty"`
	Files  int64  `json:"files,omitempty"`
	// Base, New and Reused are the metadata's files.base, files.new and files.reused: the
	// earlier backup whose unchanged files this one reused, and the files (and bytes) stored
	// by this backup and reused.
	Base   string           `json:"base,omitempty"`
	New    layout.FileCount `json:"new,omitzero"`
	Reused layout.FileCount `json:"reused,omitzero"`
	// Scope is what the backup holds (from the metadata, when read): retention rules apply
	// per scope.
	Scope Scope `json:"scope,omitempty"`
	// Problem says why a backup is incomplete.
	Problem string `json:"problem,omitempty"`
	// MetadataTime is the metadata's backup_timestamp, when read: it orders backups whose
	// names are the same second.
	MetadataTime time.Time `json:"metadata_time,omitzero"`
	// Encrypted is an age-encrypted archive (backup_….tar.gz.age): its sidecar
	// (backup_….tar.gz.age.json, the metadata in the clear) goes with it, and it is complete
	// only with one.
	Encrypted bool `json:"encrypted,omitempty"`
}

// ListOptions tune List.
type ListOptions struct {
	// Location is the time zone backup names are read in (default time.Local: names are
	// written in the local time of the machine that took them).
	Location *time.Location
	// ReadArchives reads every archive up to its metadata (its first file; in older archives its
	// last, which decompresses the whole archive) for its row and file counts.
	ReadArchives bool
}

// Destination is where backups are kept: a local folder or an S3 prefix.
type Destination struct {
	location string
	bucket   *storage.Bucket
	local    bool
}

// OpenDestination opens a backup destination: a folder (path or file:// URL) or
// s3://bucket/prefix?…. A local folder must exist.
func OpenDestination(ctx context.Context, location string) (*Destination, error) {
	d := &Destination{location: location, local: !storage.IsS3(location)}
	if d.local {
		dir := storage.LocalPath(location)
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("open backup destination: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("open backup destination: %s is not a folder", dir)
		}
	}
	b, err := storage.Open(ctx, location)
	if err != nil {
		return nil, fmt.Errorf("open backup destination: %w", err)
	}
	d.bucket = b
	return d, nil
}

// Close releases the destination.
func (d *Destination) Close() error { return d.bucket.Close() }

// String describes the destination (never with credentials).
func (d *Destination) String() string { return d.bucket.String() }

// List returns every backup, incomplete backup and run in progress in the destination,
// newest first (see Sort). Other entries are ignored.
func (d *Destination) List(ctx context.Context, o ListOptions) ([]Backup, error) {
	loc := o.Location
	if loc == nil {
		loc = time.Local
	}
	found, err := d.walkBackups(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("list backups in %s: %w", d, err)
	}
	if d.local {
		if err := d.addEmptyFolders(found.byName, loc); err != nil {
			return nil, fmt.Errorf("list backups in %s: %w", d, err)
		}
	}
	orphanSidecars(found.byName, found.sidecars, loc)
	out := make([]Backup, 0, len(found.byName))
	for name, b := range found.byName {
		d.settle(ctx, b, found.hasMeta[name], found.sidecars, o)
		out = append(out, *b)
	}
	Sort(out)
	return out, nil
}

// walked is what one walk of a destination finds: its backups by name (sizes, object
// counts, newest times), which folders hold metadata, and the encrypted archives' sidecars.
type walked struct {
	byName   map[string]*Backup
	hasMeta  map[string]bool
	sidecars map[string]storage.Object
}

// walkBackups walks the destination once and classifies each object by its top name.
func (d *Destination) walkBackups(ctx context.Context, loc *time.Location) (walked, error) {
	w := walked{byName: map[string]*Backup{}, hasMeta: map[string]bool{}, sidecars: map[string]storage.Object{}}
	err := d.bucket.Walk(ctx, "", func(obj storage.Object) error {
		top, rest, nested := strings.Cut(obj.Key, "/")
		if a, ok := layout.ArchiveOfSidecar(top); ok && !nested {
			w.sidecars[a] = obj
			return nil
		}
		b := w.byName[top]
		if b == nil {
			b = classify(top, nested, loc)
			if b == nil {
				return nil
			}
			w.byName[top] = b
		}
		b.Size += obj.Size
		b.Objects++
		if obj.ModTime.After(b.ModTime) {
			b.ModTime = obj.ModTime
		}
		if rest == layout.FileMetadata {
			w.hasMeta[top] = true
		}
		return nil
	})
	return w, err
}

// addEmptyFolders lists a local destination's empty folders named like a backup: they hold no
// object, yet each is an incomplete backup (a publication that crashed after claiming its name).
func (d *Destination) addEmptyFolders(byName map[string]*Backup, loc *time.Location) error {
	entries, err := os.ReadDir(storage.LocalPath(d.location))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, ok := byName[e.Name()]; ok || !e.IsDir() {
			continue
		}
		if b := classify(e.Name(), true, loc); b != nil {
			if fi, err := e.Info(); err == nil {
				b.ModTime = fi.ModTime()
			}
			byName[e.Name()] = b
		}
	}
	return nil
}

// settle gives one backup its status, reading its metadata (a folder's, an encrypted
// archive's sidecar, a plain archive's with ReadArchives) or judging a staging area.
func (d *Destination) settle(ctx context.Context, b *Backup, hasMeta bool, sidecars map[string]storage.Object, o ListOptions) {
	switch b.Kind {
	case KindFolder:
		if !hasMeta {
			b.Status, b.Problem = StatusIncomplete, "no "+layout.FileMetadata
		} else {
			d.readFolderMetadata(ctx, b)
		}
	case KindArchive:
		b.Status = StatusComplete
		if b.Encrypted {
			d.readSidecar(ctx, b, sidecars)
			return
		}
		if o.ReadArchives {
			d.readArchiveMetadata(ctx, b)
		}
		if b.Status == StatusComplete {
			d.checkArchiveEnd(ctx, b)
		}
	case KindStaging:
		b.Time = b.ModTime
		b.Status = StatusInProgress
		if dead, why := d.stagingAbandoned(b, time.Now()); dead {
			b.Status, b.Problem = StatusAbandoned, why
		}
	}
}

// classify returns the entry a top-level name stands for, or nil if it is not one this
// package deals with. dir says whether the name holds objects (a folder).
func classify(name string, dir bool, loc *time.Location) *Backup {
	if dir && layout.IsStagingName(name) {
		return &Backup{Name: name, Kind: KindStaging}
	}
	if !dir && strings.HasPrefix(name, archiveTmpPrefix) {
		return &Backup{Name: name, Kind: KindStaging}
	}
	p, ok := layout.ParseName(name, loc)
	if !ok || p.Compressed == dir {
		// A plain file named like a folder backup, or a folder named like an archive: not
		// something this tool wrote, so never touched.
		return nil
	}
	b := &Backup{Name: name, Kind: KindFolder, Time: p.Time, Seq: p.Seq, Encrypted: p.Encrypted}
	if p.Compressed {
		b.Kind = KindArchive
	}
	return b
}

// readFolderMetadata fills b from its backup_metadata.json and sets its status.
func (d *Destination) readFolderMetadata(ctx context.Context, b *Backup) {
	r, _, err := d.bucket.Open(ctx, b.Name+"/"+layout.FileMetadata)
	if err == nil {
		defer r.Close()
		var data []byte
		if data, err = storage.ReadLimited(r, layout.MaxMetadataSize); err == nil {
			fillFromMetadata(b, data)
			return
		}
	}
	b.Status, b.Problem = metadataFailure(err), fmt.Sprintf("read %s: %v", layout.FileMetadata, err)
}

// metadataFailure is the status of a folder whose metadata could not be read for err: a
// failure that says nothing of the file (a network error, a refused access) leaves it
// unreadable; a file that is missing, too large, or no regular file makes it incomplete.
func metadataFailure(err error) Status {
	var special *storage.SpecialError
	if errors.As(err, &special) {
		return StatusIncomplete
	}
	switch storage.ErrorCode(err) {
	case storage.CodeTransient, storage.CodePermission, storage.CodeUnknown, storage.CodeCanceled:
		return StatusUnreadable
	}
	return StatusIncomplete
}

// fillFromMetadata parses metadata into b and sets its status.
func fillFromMetadata(b *Backup, data []byte) *layout.Metadata {
	m, err := layout.ParseMetadata(data)
	if err != nil {
		b.Status, b.Problem = StatusIncomplete, err.Error()
		return nil
	}
	b.RunID, b.Models, b.Files, b.MetadataTime = m.RunID, len(m.Models), m.Files.Count, m.BackupTimestamp
	b.Base, b.New, b.Reused = m.Files.Base, m.Files.New, m.Files.Reused
	b.Scope = ScopeOf(m.BackupOptions)
	b.Rows = 0
	for _, e := range m.Models {
		b.Rows += e.Rows
	}
	// The Python command's metadata has no status key; it was written when the backup was done.
	if m.Status == layout.StatusComplete || (m.FormatVersion == 0 && m.Status == "") {
		b.Status, b.Problem = StatusComplete, ""
		return m
	}
	b.Status, b.Problem = StatusIncomplete, fmt.Sprintf("metadata status %q", m.Status)
	return m
}

// checkArchiveEnd makes an archive whose end is missing (cut short by a copy that stopped, or
// a full disk) incomplete, so that prune never counts it as the newest full backup and
// deletes the whole ones before it. It reads the archive's first bytes and last few KiB
// (archive.EndsWhole). A .tar.zst that does not end as this tool ends one is read up to its
// metadata, which tells a cut archive of this tool from another tool's (whose end is not
// known: it stays complete).
// Local archives only: an S3 upload is whole or absent.
func (d *Destination) checkArchiveEnd(ctx context.Context, b *Backup) {
	c, ok := archive.CompressionOf(b.Name)
	if !d.local || !ok {
		return
	}
	head, tail, size, err := readEnds(filepath.Join(storage.LocalPath(d.location), b.Name))
	if err != nil {
		b.Status, b.Problem = StatusUnreadable, err.Error()
		return
	}
	if archive.EndsWhole(head, tail, size, c) {
		return
	}
	if c == archive.Zstd {
		// Only this tool's .tar.zst ending is known: another tool's stays complete.
		if b.RunID == "" {
			d.readArchiveMetadata(ctx, b)
		}
		if b.Status != StatusComplete || b.RunID == "" {
			return
		}
	}
	b.Status, b.Problem = StatusIncomplete, "its end is missing (cut short: a copy that stopped, a full disk?); verify says what is wrong"
}

// readEnds reads what archive.EndsWhole judges of the file at p: its first HeadSize bytes, its
// last EndSize (all of a shorter file either way), and its size.
func readEnds(p string) (head, tail []byte, size int64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, 0, err
	}
	size = fi.Size()
	head = make([]byte, min(size, archive.HeadSize))
	off := max(0, size-archive.EndSize)
	tail = make([]byte, size-off)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, nil, 0, fmt.Errorf("read the start of %s: %w", filepath.Base(p), err)
	}
	if _, err := f.ReadAt(tail, off); err != nil {
		return nil, nil, 0, fmt.Errorf("read the end of %s: %w", filepath.Base(p), err)
	}
	return head, tail, size, nil
}

// readArchiveMetadata reads the archive up to its backup_metadata.json.
func (d *Destination) readArchiveMetadata(ctx context.Context, b *Backup) {
	r, _, err := d.bucket.Open(ctx, b.Name)
	if err != nil {
		b.Status, b.Problem = StatusIncomplete, err.Error()
		return
	}
	defer r.Close()
	data, err := archiveMetadata(ctx, r)
	if err != nil {
		b.Status, b.Problem = StatusIncomplete, err.Error()
		return
	}
	fillFromMetadata(b, data)
}

// archiveMetadata returns the content of <top>/backup_metadata.json in an archive (.tar.gz,
// .tar.zst or .tar).
func archiveMetadata(ctx context.Context, r io.Reader) ([]byte, error) {
	gz, _, err := archive.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read archive: no %s (a truncated archive?)", layout.FileMetadata)
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		clean := path.Clean(hdr.Name)
		if hdr.Typeflag == tar.TypeReg && path.Base(clean) == layout.FileMetadata && strings.Count(clean, "/") == 1 {
			data, err := storage.ReadLimited(tr, layout.MaxMetadataSize)
			if err != nil {
				return nil, fmt.Errorf("read archive: %s: %w", layout.FileMetadata, err)
			}
			return data, nil
		}
	}
}

// Sort orders backups newest first: by the name's time, then collision suffix, then the
// metadata's timestamp, then name.
func Sort(bs []Backup) {
	sort.SliceStable(bs, func(i, j int) bool { return newer(bs[i], bs[j]) })
}

func newer(a, b Backup) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.After(b.Time)
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	if !a.MetadataTime.Equal(b.MetadataTime) {
		return a.MetadataTime.After(b.MetadataTime)
	}
	return a.Name > b.Name
}

// Remove deletes a backup: every object under a folder's prefix, or the archive. A local
// backup a reader holds (layout.Hold) is left as it is: layout.ErrInUse.
func (d *Destination) Remove(ctx context.Context, b Backup) error {
	if d.local && (b.Kind == KindFolder || b.Kind == KindArchive) {
		release, err := layout.Claim(storage.LocalPath(d.location) + "/" + b.Name)
		if err != nil {
			return fmt.Errorf("remove %s: %w", b.Name, err)
		}
		defer release()
	}
	var err error
	switch b.Kind {
	case KindFolder:
		if err = d.removeMetadata(ctx, b.Name); err == nil {
			err = d.bucket.RemoveAll(ctx, b.Name)
		}
		if err == nil && d.local {
			// An empty folder holds no object for RemoveAll to find on some drivers.
			if rerr := os.Remove(storage.LocalPath(d.location) + "/" + b.Name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = rerr
			}
		}
	case KindArchive:
		err = d.removeArchive(ctx, b)
	case KindStaging:
		err = d.removeAbandoned(ctx, b)
	default:
		return fmt.Errorf("remove %s: unknown kind %q", b.Name, b.Kind)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", b.Name, err)
	}
	return nil
}

// stagingAbandoned reports whether a staging folder or temporary archive was left by a run
// that is gone, and why. In a local folder the owner record beside the staging folder
// decides; elsewhere (S3, where no process can be checked) one unchanged for over a day is.
func (d *Destination) stagingAbandoned(b *Backup, now time.Time) (bool, string) {
	if !d.local {
		if now.Sub(b.ModTime) > layout.NoOwnerStaleAfter {
			return true, "unchanged for over a day"
		}
		return false, ""
	}
	return layout.StagingAbandoned(d.stagingOf(b), b.ModTime, now)
}

// stagingOf returns the staging folder a staging entry belongs to: itself, or for a
// temporary archive (.wnb-archive-<run>-<random>.tmp) its run's staging folder.
func (d *Destination) stagingOf(b *Backup) string {
	dir := storage.LocalPath(d.location)
	if b.Kind == KindStaging && strings.HasPrefix(b.Name, archiveTmpPrefix) {
		rest := strings.TrimSuffix(strings.TrimPrefix(b.Name, archiveTmpPrefix), ".tmp")
		if i := strings.LastIndexByte(rest, '-'); i > 0 {
			rest = rest[:i]
		}
		return layout.StagingPath(dir, rest)
	}
	return layout.StagingPath(dir, strings.TrimPrefix(b.Name, layout.StagingPrefix))
}

// removeAbandoned removes a staging entry whose owner is gone, checking again first: a run
// in progress is never removed.
func (d *Destination) removeAbandoned(ctx context.Context, b Backup) error {
	now := time.Now()
	if dead, why := d.stagingAbandoned(&b, now); !dead {
		return fmt.Errorf("a run in progress is never removed (%s)", why)
	}
	if !d.local {
		return d.bucket.RemoveAll(ctx, b.Name)
	}
	if strings.HasPrefix(b.Name, archiveTmpPrefix) {
		return os.Remove(storage.LocalPath(d.location) + "/" + b.Name)
	}
	return layout.RemoveAbandoned(d.stagingOf(&b), b.ModTime, now)
}

// orphanSidecars lists a sidecar whose encrypted archive is gone (a prune cut short removes
// the sidecar first, so this is rare) as an incomplete archive, so that prune can remove it.
func orphanSidecars(byName map[string]*Backup, sidecars map[string]storage.Object, loc *time.Location) {
	for name, obj := range sidecars {
		if byName[name] != nil {
			continue
		}
		if b := classify(name, false, loc); b != nil {
			b.ModTime = obj.ModTime
			byName[name] = b
		}
	}
}

// readSidecar completes an encrypted archive from its sidecar: its metadata in the clear,
// which makes it complete. Without one the archive is incomplete (its publication stopped
// before the sidecar, which is written last), and without the archive the sidecar is.
func (d *Destination) readSidecar(ctx context.Context, b *Backup, sidecars map[string]storage.Object) {
	side, ok := sidecars[b.Name]
	if !ok {
		b.Status, b.Problem = StatusIncomplete, "no sidecar "+layout.SidecarName(b.Name)+" (the encrypted archive's publication did not finish)"
		return
	}
	if b.Objects == 0 {
		b.Size, b.Objects = side.Size, 1
		b.Status, b.Problem = StatusIncomplete, "a sidecar "+layout.SidecarName(b.Name)+" without its archive"
		return
	}
	archiveSize := b.Size
	b.Size += side.Size
	b.Objects++
	if side.ModTime.After(b.ModTime) {
		b.ModTime = side.ModTime
	}
	r, _, err := d.bucket.Open(ctx, layout.SidecarName(b.Name))
	if err != nil {
		b.Status, b.Problem = StatusIncomplete, err.Error()
		return
	}
	defer r.Close()
	data, err := storage.ReadLimited(r, layout.MaxMetadataSize)
	if err != nil {
		b.Status, b.Problem = StatusIncomplete, fmt.Sprintf("read %s: %v", layout.SidecarName(b.Name), err)
		return
	}
	m := fillFromMetadata(b, data)
	if m != nil && m.Archive != nil && m.Archive.Bytes != archiveSize && b.Status == StatusComplete {
		// Cut short or replaced: prune must not count it as the backup to keep.
		b.Status, b.Problem = StatusIncomplete, fmt.Sprintf("the archive holds %d bytes, its sidecar records %d (cut short or replaced); verify says what is wrong", archiveSize, m.Archive.Bytes)
	}
}

// removeArchive removes an archive; an encrypted one's sidecar first, so that a removal cut
// short leaves an incomplete archive that the next prune finds, not a complete-looking one.
func (d *Destination) removeArchive(ctx context.Context, b Backup) error {
	if !b.Encrypted {
		return d.bucket.Remove(ctx, b.Name)
	}
	if err := d.bucket.Remove(ctx, layout.SidecarName(b.Name)); err != nil && !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	if err := d.bucket.Remove(ctx, b.Name); err != nil && !errors.Is(err, storage.ErrNotExist) {
		return err
	}
	return nil
}
