package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// Incremental backups. The storage's listing, in the order of each file's path in the backup
// (a local folder's walk is in that order when the paths are its keys under files/; other
// listings go through an external sort, as they may not fit in memory), is merged, as two
// sorted streams, with the base backup's file index. A file
// whose key, size and modification time (S3: ETag) are the base's is unchanged: its key-list
// entry gets Reuse, where the base's copy is, and the base's sum, and the worker reuses that
// copy instead of reading the file. With --checksum every file the base holds at the same
// size is a candidate, and the worker hashes it to decide. A self-indexed base (no index: a
// local folder backed up into a local folder) is read from its SHA256SUMS alone: its copies'
// own sizes and modification times are its index, which the worker reads as it links each
// copy, and a file modified since the base started is copied without trying.

// incremental is how a backup's plan reuses a base; the zero value (no base) plans a full
// backup.
type incremental struct {
	base     *baseBackup
	checksum bool
	// location is the destination's root, under which Reuse keys are (CopyTask.Base).
	location string
	// recipients, on an encrypted backup, are the public keys every copy is encrypted to:
	// each file is stored as NAME.age, and a base's copies are reused only when they were
	// encrypted to the same keys (findBase sees to it).
	recipients []string
	// sums, for a self-indexed base, reads its manifest (see baseSums).
	sums *baseSums
}

// reuseFileWeight and reuseByteCost are what a reused file counts against a task's bounds, in
// eighths of a new file and in bytes: a link costs a fraction of a copy, so a task of
// unchanged files holds many more of them, while a task is never tiny in bytes and huge in
// count. A file hashed for --checksum costs what a copy does. A quarter rather than an
// eighth: tasks of 16,000 links left two workers linking alone at the end (second backups of
// 100k files ran 6% slower).
const (
	newFileWeight   = 8
	reuseFileWeight = 2
	reuseByteCost   = 4 << 10
)

// spillDir is where a run sorts what may not fit in memory: its local staging folder's
// working folder, else a temporary folder named after its owner process (swept by the next
// run if this one is killed). cleanup removes it.
func spillDir(d destination, name string) (dir string, cleanup func(), err error) {
	if l, ok := d.(*localDestination); ok {
		dir = filepath.Join(l.Location(), internalDir, name)
		err = os.MkdirAll(dir, 0o700)
	} else {
		dir, err = scratch.MkdirTemp("", "wnb-"+name+"-")
	}
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", name, err)
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// listed is a storage's listing in the order of each file's path in the backup: each
// listed entry is passed to yield, whose error ends the listing.
type listed func(yield func(e messages.FileEntry) error) error

// listing returns src's listing in path order. A local folder is walked in the order of its
// keys (storage.Bucket.Walk), which is the order of the paths when they are the keys under
// files/ unchanged: the entries are passed on as the walk finds them. Otherwise (escaped
// names, encrypted copies' ".age", an object store's listing) the entries go through an
// external sort first, in spill.
func (p *copyPlanner) listing(ctx context.Context, src *storage.Bucket, spill string) listed {
	if src.IsLocal() && p.info.NameEncoding != layout.NamesEscaped && len(p.inc.recipients) == 0 {
		return func(yield func(messages.FileEntry) error) error {
			var last string
			return p.walkAhead(ctx, src, func(e messages.FileEntry) error {
				if last != "" && e.Path <= last {
					return fmt.Errorf("list the storage: %q came after %q (a local folder is walked in key order)", e.Path, last)
				}
				last = e.Path
				return yield(e)
			})
		}
	}
	return func(yield func(messages.FileEntry) error) error {
		sorted := extsort.New(spill, sumsBudget())
		defer sorted.Close()
		err := p.walk(ctx, src, func(e messages.FileEntry) error { return sorted.Add(e.Path, encodeListed(e)) })
		if err != nil {
			return err
		}
		return sorted.Each(func(path string, value []byte) error {
			e, err := decodeListed(path, value)
			if err != nil {
				return fmt.Errorf("sorted listing: %w", err)
			}
			return yield(e)
		})
	}
}

// walkBatch is how many entries the walk hands over at once, and walkBatches how many
// batches it may be ahead.
const (
	walkBatch   = 512
	walkBatches = 8
)

// walkAhead is walk on a goroutine of its own, a few batches ahead of fn: the listing (system
// calls) and the planning (the join with the base, the key lists) take two cores at once. It
// returns once the walk has ended.
func (p *copyPlanner) walkAhead(ctx context.Context, src *storage.Bucket, fn func(messages.FileEntry) error) error {
	a := startAhead(ctx, walkBatch, walkBatches, func(ctx context.Context, emit func(messages.FileEntry) error) error {
		return p.walk(ctx, src, emit)
	})
	defer a.stop()
	for {
		e, ok, err := a.next()
		if !ok || err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// walk lists the storage, passing each regular file's entry to fn; entries that are not
// regular files go to the plan's warnings.
func (p *copyPlanner) walk(ctx context.Context, src *storage.Bucket, fn func(messages.FileEntry) error) error {
	return src.WalkSpecial(ctx, "", func(obj storage.Object) error {
		if obj.Key == StorageLockKey && !src.IsLocal() {
			// A restore's lock, not the platform's: a stale one (refuseDuringS3Restore
			// warned of it) must not come back with the next restore.
			sp := storage.Special{Key: obj.Key, Kind: "restore lock", Why: "a restore's lock object, not the platform's"}
			p.info.Special = append(p.info.Special, skippedEntry{Kind: sp.Kind, Warning: sp.Warning()})
			return nil
		}
		return fn(p.entryOf(obj))
	}, func(sp storage.Special) error {
		if !p.recordFolder(sp) {
			p.info.Special = append(p.info.Special, skippedEntry{Kind: sp.Kind, Warning: sp.Warning()})
		}
		return nil
	})
}

// recordFolder records an empty folder, or one with permissions of its own, in the plan for
// the restore to bring back (layout.FolderSummary). It returns false for any other entry, and
// for a folder that cannot be recorded, which is warned of instead.
func (p *copyPlanner) recordFolder(sp storage.Special) bool {
	if sp.Kind != storage.KindEmptyFolder && sp.Kind != storage.KindFolderPermissions {
		return false
	}
	if p.info.Folders == nil {
		p.info.Folders = &layout.FolderSummary{}
	}
	return p.info.Folders.Record(sp.Key, sp.Kind == storage.KindEmptyFolder, sp.Mode, sp.OwnMode)
}

// entryOf is a listed object's key-list entry, Path being where the backup stores it.
func (p *copyPlanner) entryOf(obj storage.Object) messages.FileEntry {
	p.noteMode(obj)
	p.noteSealedName(obj.Key)
	p.noteArchivePath(obj.Key)
	e := messages.FileEntry{Key: obj.Key, Size: obj.Size, Mode: uint32(obj.Mode.Perm()), ETag: obj.ETag}
	if obj.ETag == "" && !obj.ModTime.IsZero() && p.noteTime(obj) {
		e.ModTime = obj.ModTime.UnixNano()
	}
	e.Path = layout.FilesDir + "/" + obj.Key
	if p.info.NameEncoding == layout.NamesEscaped {
		if esc := storage.EscapeKey(obj.Key); esc != obj.Key {
			e.Stored = layout.FilesDir + "/" + esc
			e.Path = e.Stored
		}
	}
	if len(p.inc.recipients) > 0 {
		// Sorted and joined with the base's index by the path stored: "a.age" and "a-b.age"
		// are not in the order of "a" and "a-b".
		e.Path += encryption.Ext
	}
	return e
}

// maxNameBytes is the longest name (one path segment) a local filesystem gives a file.
const maxNameBytes = 255

// noteSealedName counts a file that an encrypted backup folder cannot hold: its copy's name,
// NAME.age, is longer than a file name may be. The plan fails on them, naming them, before
// anything is copied (each copy would fail only after its task's every attempt).
func (p *copyPlanner) noteSealedName(key string) {
	if len(p.inc.recipients) == 0 || !p.dest.IsLocal() || len(path.Base(key))+len(encryption.Ext) <= maxNameBytes {
		return
	}
	if p.tooLong++; p.tooLong <= maxNamed {
		p.tooLongNames = append(p.tooLongNames, storage.QuoteKey(key))
	}
}

// maxArchiveKey is the longest storage key an archive holds. A restore unpacks an archive
// under its temporary folder (/tmp/wnb-restore-…/.extract-…/backup_…/files/KEY), and a path
// may be at most 4,096 bytes long (PATH_MAX): 512 are left for the folders above the key.
// Past it, the whole archive could not be unpacked, its database and every file with it.
const maxArchiveKey = 4096 - 512

// noteArchivePath counts a file whose key is too long for an archive to be unpacked.
func (p *copyPlanner) noteArchivePath(key string) {
	if !p.o.Compress || len(key) <= maxArchiveKey {
		return
	}
	if p.longPaths++; p.longPaths <= maxNamed {
		p.longPathNames = append(p.longPathNames, storage.QuoteKey(key[:64])+"…")
	}
}

// unholdableError is the plan's failure on the files noteSealedName and noteArchivePath
// counted, if any.
func (p *copyPlanner) unholdableError() error {
	if p.longPaths > 0 {
		return fmt.Errorf("%d files have paths too long for an archive, which a restore unpacks under a temporary folder within the system's limit of 4,096 bytes a path (at most %d bytes a storage path): %s; nothing was backed up: back up to a folder (without --compress), which holds them, or shorten the paths",
			p.longPaths, maxArchiveKey, nameSome(p.longPathNames, p.longPaths, ", "))
	}
	if p.tooLong == 0 {
		return nil
	}
	return fmt.Errorf("%d files have names too long for an encrypted backup folder, whose copies are named NAME%s (at most %d bytes a name): %s; nothing was backed up: back up with --compress (an encrypted archive holds any name), or shorten the names",
		p.tooLong, encryption.Ext, maxNameBytes, nameSome(p.tooLongNames, p.tooLong, ", "))
}

// maxModeWarnings bounds the files named by mode warnings; the rest are counted.
const maxModeWarnings = 100

// noteMode warns about a local file whose mode the backup cannot keep as it is: one without
// any permission (a mode of 0 stands for "not recorded", which a restore gives the default
// permissions), and one with setuid, setgid or sticky bits, which a restore never sets.
func (p *copyPlanner) noteMode(obj storage.Object) {
	var why string
	switch {
	case storage.IsS3(p.o.StorageURL):
		return
	case obj.Mode == 0:
		why = "has no permissions (mode 0000), which the backup cannot record: a restore gives it the default permissions (0644)"
	case obj.Unkept != 0:
		why = fmt.Sprintf("has mode bits a restore never sets (%s): it is restored as %s", unkeptBits(obj.Unkept), layout.FormatMode(obj.Mode))
	default:
		return
	}
	p.modeNotes++
	if p.modeNotes <= maxModeWarnings {
		p.info.Modes = append(p.info.Modes, fmt.Sprintf("file %s %s", storage.QuoteKey(obj.Key), why))
		return
	}
	more := fmt.Sprintf("%d more files have a mode the backup does not keep as it is (no permissions, or setuid, setgid or sticky bits)", p.modeNotes-maxModeWarnings)
	if len(p.info.Modes) == maxModeWarnings {
		p.info.Modes = append(p.info.Modes, more)
	} else {
		p.info.Modes[maxModeWarnings] = more
	}
}

// Modification times are recorded in nanoseconds since 1970 in an int64: 1677 to 2262.
var (
	minRecordedTime = time.Unix(0, math.MinInt64+1)
	maxRecordedTime = time.Unix(0, math.MaxInt64)
)

// noteTime tells whether obj's modification time can be recorded, and warns by name (at most
// maxModeWarnings, then a count) about a file whose time cannot: it is taken as unknown, so
// that it is never deemed unchanged by its time (every backup copies it again) rather than
// compared by a wrapped-around value.
func (p *copyPlanner) noteTime(obj storage.Object) bool {
	if !obj.ModTime.Before(minRecordedTime) && !obj.ModTime.After(maxRecordedTime) {
		return true
	}
	p.timeNotes++
	switch {
	case p.timeNotes <= maxModeWarnings:
		p.info.Times = append(p.info.Times, fmt.Sprintf("file %s has a modification time (%s) outside the years 1678 to 2262 that a backup records: every backup copies it again, and a restore from an archive or an S3 copy may not give its time back",
			storage.QuoteKey(obj.Key), obj.ModTime.UTC().Format(time.RFC3339)))
	case p.timeNotes == maxModeWarnings+1:
		p.info.Times = append(p.info.Times, "")
		fallthrough
	default:
		p.info.Times[maxModeWarnings] = fmt.Sprintf("%d more files have a modification time outside the years 1678 to 2262", p.timeNotes-maxModeWarnings)
	}
	return false
}

// unkeptBits names the setuid, setgid and sticky bits of m.
func unkeptBits(m fs.FileMode) string {
	var names []string
	for _, b := range []struct {
		bit  fs.FileMode
		name string
	}{{fs.ModeSetuid, "setuid"}, {fs.ModeSetgid, "setgid"}, {fs.ModeSticky, "sticky"}} {
		if m&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	return strings.Join(names, ", ")
}

// encodeListed packs a listed file's entry for the sorter (its Path is the record's key):
// lighter than JSON for the millions of entries a large storage lists.
func encodeListed(e messages.FileEntry) []byte {
	b := make([]byte, 0, len(e.Key)+len(e.Stored)+len(e.ETag)+32)
	for _, s := range []string{e.Key, e.Stored, e.ETag} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendVarint(b, e.ModTime)
	return binary.AppendUvarint(b, uint64(e.Mode))
}

// decodeListed unpacks what encodeListed packed.
func decodeListed(path string, b []byte) (messages.FileEntry, error) {
	e := messages.FileEntry{Path: path}
	bad := errors.New("damaged record of " + path)
	for _, s := range []*string{&e.Key, &e.Stored, &e.ETag} {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return e, bad
		}
		*s, b = string(b[k:k+int(n)]), b[k+int(n):]
	}
	for _, v := range []*int64{&e.Size, &e.ModTime} {
		x, k := binary.Varint(b)
		if k <= 0 {
			return e, bad
		}
		*v, b = x, b[k:]
	}
	mode, k := binary.Uvarint(b)
	if k <= 0 || k != len(b) {
		return e, bad
	}
	e.Mode = uint32(mode)
	return e, nil
}

// joinBase feeds the listing to the planner, marking the files the base holds unchanged.
func (p *copyPlanner) joinBase(ctx context.Context, list listed, inc incremental) error {
	var idx *baseIndex
	if inc.base != nil {
		var err error
		if idx, err = openBaseIndex(ctx, inc, p.info.NameEncoding); err != nil {
			return err
		}
		defer idx.close()
	}
	return list(func(e messages.FileEntry) error {
		if idx != nil {
			b, ok, err := idx.find(e)
			if err != nil {
				return err
			}
			if ok && unchanged(e, b, inc.checksum) {
				p.markReused(&e, b, inc)
			}
		}
		return p.add(ctx, e)
	})
}

// unchanged tells whether listed file s is the one the base's index entry b describes: same
// key and size, and same ETag (S3 source) or modification time (local source); with
// checksum, the worker compares the content, so the same key and size suffice here.
func unchanged(s, b messages.FileEntry, checksum bool) bool {
	switch {
	case b.SHA256 == "" || s.Key != b.Key || s.Size != b.Size:
		return false
	case checksum:
		return true
	case s.ETag != "":
		return s.ETag == b.ETag
	default:
		return s.ModTime != 0 && s.ModTime == b.ModTime
	}
}

// markReused points e at the base's copy of it.
func (p *copyPlanner) markReused(e *messages.FileEntry, b messages.FileEntry, inc incremental) {
	e.SHA256 = b.SHA256
	if e.Mode == 0 { // an S3 listing has no permissions: the base recorded them
		e.Mode = b.Mode
	}
	if inc.base.root.IsLocal() {
		e.Reuse = inc.base.name + "/" + b.Path
	} else {
		e.Reuse = layout.ObjectKey(b.SHA256)
	}
}

// baseIndex reads a base's file index forward, as the sorted listing asks for paths. A
// self-indexed base has no index: its SHA256SUMS names its files, and each copy's own size
// and modification time are what the index would have recorded.
type baseIndex struct {
	rc interface{ Close() error }
	// index reads the base's file index forward.
	index forwardJoin[messages.FileEntry]
	sums  *layout.SumsJoin
	name  string
	// self is the self-indexed base's view of its copies, nil for a base with an index.
	self *selfIndex
}

// selfIndex looks a self-indexed base's files up in its manifest, as baseSums reads it.
type selfIndex struct {
	sums *sumReader
	// sameNames: the base's name encoding is the new backup's; a path stands for the same
	// key only under the same.
	sameNames bool
	// since, unless 0 (--checksum, or no start recorded), is when the base started (Unix
	// nanoseconds; its backup_timestamp, read in local time): a file modified since then is
	// copied without trying the base's copy. Only which files are tried depends on it: the
	// worker's check of each linked copy decides.
	since int64
}

// openBaseIndex opens the base's file index, and the join that fills in from its
// SHA256SUMS the sums the index leaves out; a self-indexed base is read from its manifest as
// inc.sums reads it. names is the new backup's name encoding.
func openBaseIndex(ctx context.Context, inc incremental, names string) (*baseIndex, error) {
	b := inc.base
	if inc.sums != nil {
		self := &selfIndex{sums: inc.sums.open(), sameNames: b.meta.Files.NameEncoding == names}
		if !inc.checksum && !b.meta.BackupTimestamp.IsZero() {
			self.since = b.meta.BackupTimestamp.UnixNano()
		}
		return &baseIndex{name: b.name, self: self}, nil
	}
	sums := layout.NewSumsJoin(func() (io.ReadCloser, error) {
		rc, _, err := b.root.Open(ctx, b.name+"/"+layout.FileSums)
		return rc, err
	})
	rc, _, err := b.root.Open(ctx, b.name+"/"+b.meta.Files.Index)
	if err != nil {
		sums.Close()
		return nil, fmt.Errorf("read the base backup's file index: %w", err)
	}
	r := layout.NewFileIndexReader(rc)
	index := forwardJoin[messages.FileEntry]{next: r.Next, path: func(e *messages.FileEntry) string { return e.Path }}
	return &baseIndex{rc: rc, index: index, sums: sums, name: b.name}, nil
}

func (x *baseIndex) close() {
	if x.self != nil {
		return
	}
	if x.rc != nil {
		x.rc.Close()
	}
	x.sums.Close()
}

// find returns the base's entry for listed file s's path, if it has one; paths must be asked
// for in increasing order.
func (x *baseIndex) find(s messages.FileEntry) (messages.FileEntry, bool, error) {
	if x.self != nil {
		return x.findCopy(s)
	}
	e, ok, err := x.index.find(s.Path)
	if err == nil && ok {
		err = x.sums.Fill(&e)
	}
	if err != nil {
		return messages.FileEntry{}, false, baseReadFailed(x.name, err)
	}
	return e, ok, nil
}

// findCopy is find on a self-indexed base: the entry is the base's SHA256SUMS line for s's
// path, taken to have s's size and modification time, which the worker checks on the copy as
// it links it (CopyTask.SelfIndexedBase). A path the manifest does not list, a file that
// changed as the base read it, or one modified since the base started (or of no known time)
// is not found: the file is copied.
func (x *baseIndex) findCopy(s messages.FileEntry) (messages.FileEntry, bool, error) {
	rec, ok, err := x.self.sums.find(s.Path)
	if err != nil {
		return messages.FileEntry{}, false, fmt.Errorf("base backup %s: %w", x.name, err)
	}
	if !ok || !rec.ok || !x.self.sameNames || (x.self.since != 0 && (s.ModTime == 0 || s.ModTime >= x.self.since)) {
		return messages.FileEntry{}, false, nil
	}
	return messages.FileEntry{Path: s.Path, Key: s.Key, Stored: s.Stored, Size: s.Size, ModTime: s.ModTime, SHA256: rec.sum}, true, nil
}

// planCopiesIncremental plans the file copies against a base, if one is found (see
// findBase).
func (r *backupRun) planCopiesIncremental(ctx context.Context) ([]*messages.Task, []string, filePlanInfo, error) {
	root, err := storage.Open(ctx, r.o.BackupDir)
	if err != nil {
		return nil, nil, filePlanInfo{}, fmt.Errorf("open the destination %s: %w", redact.URL(r.o.BackupDir), err)
	}
	defer root.Close()
	spill, cleanup, err := spillDir(r.stage, "plan-runs")
	if err != nil {
		return nil, nil, filePlanInfo{}, err
	}
	defer cleanup()
	for {
		base, err := r.findBase(ctx, root)
		if err != nil {
			return nil, nil, filePlanInfo{}, err
		}
		inc := incremental{base: base, checksum: r.o.Checksum, location: r.o.BackupDir, recipients: r.recipients()}
		// Started before the walk, which planCopies begins with: both run at once.
		inc.sums = startBaseSums(ctx, base)
		tasks, prefixes, info, err := r.c.planCopies(ctx, r.o.RunID, r.src, r.o, r.stage.Bucket(), r.stage.Location(), spill, inc)
		inc.sums.stop() // the join may end before the manifest does
		var bad *baseReadError
		if base != nil && r.o.Base == "" && errors.As(err, &bad) && ctx.Err() == nil {
			// Its manifest's sum matched the metadata, yet its lines do not hold: a damaged
			// base is passed over, as one whose sum does not match is, and the plan made again.
			w := fmt.Sprintf("base backup %s not used: %v", base.name, bad.err)
			r.log.Warn(w)
			r.warnings = append(r.warnings, w)
			r.damagedBases = append(r.damagedBases, base.name)
			continue
		}
		if err == nil {
			inc.sums.logTo(r.log)
		}
		return tasks, prefixes, info, err
	}
}

// baseReadError is a failure to read a base backup's manifest or file index as the plan joins
// the storage's listing with it.
type baseReadError struct {
	name string
	err  error
}

func (e *baseReadError) Error() string { return fmt.Sprintf("base backup %s: %v", e.name, e.err) }
func (e *baseReadError) Unwrap() error { return e.err }

// baseReadFailed wraps err, met reading base name, as a baseReadError; a cancellation stays
// what it is.
func baseReadFailed(name string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("base backup %s: %w", name, err)
	}
	return &baseReadError{name: name, err: err}
}

// newIndexWriter returns the writer of the backup's file index, which sorts in runs on the
// local staging folder's disk, else in a temporary folder; cleanup removes them.
func (r *backupRun) newIndexWriter() (*layout.FileIndexWriter, func(), error) {
	dir, rmdir, err := spillDir(r.stage, "index-runs")
	if err != nil {
		return nil, nil, fmt.Errorf("backup: %w", err)
	}
	w := layout.NewFileIndexWriter(dir, sumsBudget())
	if !r.usesObjects() {
		w.OmitSums() // SHA256SUMS has them; an object store's readers need them in the index
	}
	return w, func() { w.Close(); rmdir() }, nil
}

// writeFileIndex writes the backup's file index, lists it in the manifest and names it in the
// metadata: the next backup finds the unchanged files there. A backup without storage files
// has none, and a self-indexed one needs none (its copies are the index).
func (r *backupRun) writeFileIndex(ctx context.Context, meta *layout.Metadata, sums *layout.SumsWriter, index *layout.FileIndexWriter) error {
	if r.src == nil {
		return nil
	}
	if r.selfIndexed() {
		meta.Files.SelfIndexed = true
		return nil
	}
	h := sha256.New()
	pr, pw := io.Pipe()
	go func() {
		_, err := index.WriteGzipTo(io.MultiWriter(h, pw))
		pw.CloseWithError(err)
	}()
	_, err := r.stage.Bucket().PutLowMemory(ctx, layout.FileIndexGz, pr, storage.Object{Mode: layout.FileMode})
	pr.CloseWithError(errors.New("stopped")) // ends the writer, if Put failed before the end
	if err != nil {
		return fmt.Errorf("backup: write %s: %w", layout.FileIndexGz, err)
	}
	meta.Files.Index = layout.FileIndexGz
	return sums.Add(layout.FileIndexGz, hex.EncodeToString(h.Sum(nil)))
}

// selfIndexed tells whether the backup's copies can stand for its file index: a local source
// into a local, unencrypted folder (no archive), where each copy keeps its source's size and
// modification time (the worker sets it, a link shares it). An S3 source's ETags, an object
// store's keys and an encrypted copy's plaintext size are only in an index.
func (r *backupRun) selfIndexed() bool {
	_, local := r.stage.(*localDestination)
	return local && !r.o.FileIndex && r.src.IsLocal() && !r.o.Compress && !r.usesObjects() && len(r.recipients()) == 0
}
