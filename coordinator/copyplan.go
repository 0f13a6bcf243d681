package coordinator

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// copyPlan is a copy's tasks and what it found the destination holds already.
type copyPlan struct {
	tasks []*messages.Task
	// base is the destination's backup whose files the copy hard-links ("" for none).
	base string
	// present and presentBytes count the files already in the destination's object store:
	// no task touches them.
	present, presentBytes int64
	// reusePlanned counts the files planned as reused (hard links into a local destination,
	// content already in an object store) and, for a source whose files are encrypted,
	// reusePlain their size before encryption: what its metadata's byte counts are in (the
	// workers and the store count the bytes stored).
	reusePlanned, reusePlain int64
}

// Task groups of a copy: the backup's own objects (fixtures, manifest, index, script) and
// its storage files.
const (
	groupBackup = "backup"
	groupFiles  = "files"
)

// planCopy cuts the source's manifest into copy tasks. Every entry carries the SHA-256 the
// file must have on arrival. Storage files already in the destination are not copied: on a
// local destination those whose path and sum match the newest usable backup there are
// hard-linked (Reuse), on S3 those whose object is in the object store are skipped.
func (r *copyRun) planCopy(ctx context.Context) (*copyPlan, error) {
	p := &copyCutter{run: r.o.RunID, dest: r.stage.Bucket(), destURL: r.stage.Location(), per: r.o.FilesPerTask, cur: map[string]*copyTaskBuf{}}
	plan := &copyPlan{}
	if r.src.archive {
		e := messages.FileEntry{Path: r.src.name, Stored: r.src.name, SHA256: r.src.archiveSum}
		if err := p.add(ctx, groupBackup, r.src.parent, "", "", e); err != nil {
			return nil, err
		}
		plan.tasks, _ = p.finish(ctx)
		return plan, nil
	}
	files, cleanup, err := newCopySorter(r.stage)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if err := r.planBackupObjects(ctx, p, files); err != nil {
		return nil, err
	}
	if r.destLocal {
		err = r.planLinks(ctx, p, plan, files)
	} else {
		err = r.planObjects(ctx, p, plan, files)
	}
	if err != nil {
		return nil, err
	}
	if plan.tasks, err = p.finish(ctx); err != nil {
		return nil, err
	}
	halt(ctx, "plan")
	return plan, nil
}

// planBackupObjects reads the source's manifest: the backup's own objects (and the manifest
// itself) are planned straight away, its storage files go to files, sorted by the key the
// destination joins them on (path for a local one, sum for an object store).
func (r *copyRun) planBackupObjects(ctx context.Context, p *copyCutter, files *extsort.Sorter) error {
	rc, _, err := r.src.bucket.Open(ctx, layout.FileSums)
	if err != nil {
		return fmt.Errorf("read the source's %s: %w", layout.FileSums, err)
	}
	defer rc.Close()
	err = layout.EachSum(rc, func(rel, sum string) error {
		if !strings.HasPrefix(rel, layout.FilesDir+"/") {
			return p.add(ctx, groupBackup, r.src.location, "", "", messages.FileEntry{Path: rel, Stored: rel, SHA256: sum})
		}
		if r.destLocal {
			return files.Add(rel, []byte("S"+sum))
		}
		return files.Add(sum, []byte("F"+rel))
	})
	if err != nil {
		return fmt.Errorf("read the source's %s: %w", layout.FileSums, err)
	}
	e := messages.FileEntry{Path: layout.FileSums, Stored: layout.FileSums, SHA256: r.src.meta.ManifestSHA256}
	return p.add(ctx, groupBackup, r.src.location, "", "", e)
}

// sourceOf is where a storage file of the source is: under the backup itself, or in its
// destination's object store.
func (r *copyRun) sourceOf(rel, sum string) (loc, key string) {
	if r.src.meta.Files.Store == layout.StoreObjects {
		return r.src.parent, layout.ObjectKey(sum)
	}
	return r.src.location, rel
}

// planLinks plans the storage files into a local destination: a file whose path and sum
// are those of the base's index entry is a hard link to the base's copy.
func (r *copyRun) planLinks(ctx context.Context, p *copyCutter, plan *copyPlan, files *extsort.Sorter) error {
	base, err := r.findLocalBase(ctx, files)
	if err != nil {
		return err
	}
	plan.base = base
	if err := r.addSourceIndex(ctx, files); err != nil {
		return err
	}
	return eachGroup(files, func(rel string, vals [][]byte) error {
		var (
			sum          string
			mtime, plain int64
		)
		type baseCopy struct {
			name string
			size int64
		}
		stored := map[string]baseCopy{} // the base's sum → its copy
		for _, v := range vals {
			switch v[0] {
			case 'S':
				sum = string(v[1:])
			case 'T':
				mtime, _ = strconv.ParseInt(string(v[1:]), 10, 64)
			case 'P':
				plain, _ = strconv.ParseInt(string(v[1:]), 10, 64)
			case 'B':
				bsum, rest, _ := strings.Cut(string(v[1:]), "\x00")
				size, name, _ := strings.Cut(rest, "\x00")
				n, err := strconv.ParseInt(size, 10, 64)
				if err != nil {
					return fmt.Errorf("plan links: %s: bad size %q", rel, size)
				}
				stored[bsum] = baseCopy{name: name, size: n}
			}
		}
		if sum == "" {
			return nil // in the base only
		}
		// The recorded time goes with the file: its copy gets it (an object store's object
		// has one of the times of the files that share it), and a link is used only if
		// the earlier copy has it.
		e := messages.FileEntry{Path: rel, SHA256: sum, ModTime: mtime}
		if c, ok := stored[sum]; ok {
			// The size lets the worker check the base's copy is what its index says.
			e.Reuse, e.Size = base+"/"+c.name, c.size
			plan.reusePlanned++
			plan.reusePlain += plain
		}
		loc, key := r.sourceOf(rel, sum)
		e.Stored = key
		return p.add(ctx, groupFiles+locTag(loc, r.src), loc, r.o.Dest, "", e)
	})
}

// addSourceIndex adds what the source's index records of each file that the join needs:
// into a local destination (files keyed by path) its modification time, and the size before
// encryption of an encrypted backup's file; into an object store (keyed by sum) only that
// size. A backup without an index adds nothing (its copies' own times are the files').
func (r *copyRun) addSourceIndex(ctx context.Context, files *extsort.Sorter) error {
	index, sealed := r.src.meta.Files.Index, r.src.meta.Encryption != nil
	if index == "" || (!r.destLocal && !sealed) {
		return nil
	}
	rc, _, err := r.src.bucket.Open(ctx, index)
	if err != nil {
		return fmt.Errorf("read the source's %s: %w", index, err)
	}
	defer rc.Close()
	sums := layout.NewSumsJoin(func() (io.ReadCloser, error) {
		rc, _, err := r.src.bucket.Open(ctx, layout.FileSums)
		return rc, err
	})
	defer sums.Close()
	err = layout.ReadFileIndex(rc, func(e messages.FileEntry) error {
		key := e.Path
		if !r.destLocal {
			if err := sums.Fill(&e); err != nil || e.SHA256 == "" {
				return err
			}
			key = e.SHA256
		}
		if sealed {
			if err := files.Add(key, []byte("P"+strconv.FormatInt(e.Size, 10))); err != nil {
				return err
			}
		}
		if e.ModTime == 0 || !r.destLocal {
			return nil
		}
		return files.Add(key, []byte("T"+strconv.FormatInt(e.ModTime, 10)))
	})
	if err != nil {
		return fmt.Errorf("read the source's %s: %w", index, err)
	}
	return nil
}

// locTag tells the task groups of the two places a source's files can be apart.
func locTag(loc string, src *copySource) string {
	if loc == src.parent {
		return "-objects"
	}
	return ""
}

// planObjects plans the storage files into an S3 destination's object store: one listing of
// its objects/ is merged with the source's sums; content already there costs nothing, and
// content listed under several paths is copied once.
func (r *copyRun) planObjects(ctx context.Context, p *copyCutter, plan *copyPlan, files *extsort.Sorter) error {
	if err := r.addSourceIndex(ctx, files); err != nil {
		return err
	}
	present, err := newPresentList(p.dest)
	if err != nil {
		return err
	}
	defer present.discard()
	err = r.destRoot.Walk(ctx, layout.ObjectsDir+"/", func(o storage.Object) error {
		sum := path.Base(o.Key)
		if layout.ObjectKey(sum) != o.Key {
			return nil // not an object of the store
		}
		return files.Add(sum, []byte("O"+strconv.FormatInt(o.Size, 10)))
	})
	if err != nil {
		return fmt.Errorf("list the destination's object store: %w", err)
	}
	err = eachGroup(files, func(sum string, vals [][]byte) error {
		var rels []string
		size, plain := int64(-1), int64(0)
		for _, v := range vals {
			switch v[0] {
			case 'F':
				rels = append(rels, string(v[1:]))
			case 'O':
				size, _ = strconv.ParseInt(string(v[1:]), 10, 64)
			case 'P':
				n, _ := strconv.ParseInt(string(v[1:]), 10, 64)
				plain += n
			}
		}
		switch {
		case len(rels) == 0:
			return nil
		case size >= 0:
			plan.present += int64(len(rels))
			plan.presentBytes += int64(len(rels)) * size
			plan.reusePlanned += int64(len(rels))
			plan.reusePlain += plain
			return present.add(sum)
		}
		loc, key := r.sourceOf(rels[0], sum)
		e := messages.FileEntry{Path: layout.ObjectKey(sum), Stored: key, SHA256: sum}
		return p.add(ctx, groupFiles+locTag(loc, r.src), loc, "", r.o.Dest, e)
	})
	if err != nil {
		return err
	}
	return present.save(ctx, p.dest)
}

// presentList is the key list of the objects a copy finds in the destination's store and
// does not copy again: saved in its staging area, where prune's mark finds a run's key lists,
// so that a prune meanwhile keeps them for the copy as it keeps a backup's reuses.
type presentList struct {
	f *os.File
	w *bufio.Writer
	l *messages.FileListWriter
}

// presentListKey is where the list goes in the staging area.
var presentListKey = path.Join(internalDir, "keys", "present-objects.jsonl")

// newPresentList starts the list in a temporary file (it has a line per object).
func newPresentList(dest *storage.Bucket) (*presentList, error) {
	f, err := scratch.CreateTemp("", "wnb-present-")
	if err != nil {
		return nil, fmt.Errorf("list the objects present: %w", err)
	}
	w := bufio.NewWriter(f)
	return &presentList{f: f, w: w, l: messages.NewFileListWriter(w)}, nil
}

func (pl *presentList) add(sum string) error {
	return pl.l.Add(messages.FileEntry{Path: layout.ObjectKey(sum), Stored: layout.ObjectKey(sum), SHA256: sum})
}

// save writes the list into the staging area.
func (pl *presentList) save(ctx context.Context, dest *storage.Bucket) error {
	if err := pl.l.Flush(); err != nil {
		return err
	}
	if err := pl.w.Flush(); err != nil {
		return err
	}
	if _, err := pl.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := dest.PutLowMemory(ctx, presentListKey, pl.f, storage.Object{Mode: 0o600}); err != nil {
		return fmt.Errorf("write the list of the objects present: %w", err)
	}
	return nil
}

func (pl *presentList) discard() {
	pl.f.Close()
	os.Remove(pl.f.Name())
}

// eachGroup calls fn once per key of s with every value of that key.
func eachGroup(s *extsort.Sorter, fn func(key string, vals [][]byte) error) error {
	var (
		cur  string
		vals [][]byte
		some bool
	)
	err := s.Each(func(key string, v []byte) error {
		if some && key != cur {
			if err := fn(cur, vals); err != nil {
				return err
			}
			vals = vals[:0]
		}
		cur, some = key, true
		vals = append(vals, append([]byte(nil), v...))
		return nil
	})
	if err != nil || !some {
		return err
	}
	return fn(cur, vals)
}

// findLocalBase picks the newest complete backup folder of the local destination that has a
// file index and keeps its files itself, checks its manifest and index, and adds its index
// entries to files. A base that fails a check is a warning naming it, and the next older one
// is tried; none is no base.
func (r *copyRun) findLocalBase(ctx context.Context, files *extsort.Sorter) (string, error) {
	entries, err := os.ReadDir(r.o.Dest)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", redact.URL(r.o.Dest), err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && layout.IsBackupName(e.Name()) && e.Name() != r.src.name {
			names = append(names, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, name := range names {
		dir := filepath.Join(r.o.Dest, name)
		meta, err := layout.ReadMetadata(dir)
		if err != nil || meta.Status != layout.StatusComplete || !hasIndex(meta) || meta.Files.Store != "" {
			continue
		}
		if err := checkBaseIndex(ctx, dir, meta); err != nil {
			r.log.Warn("copy: not using a backup of the destination as base", "base", dir, "reason", err)
			continue
		}
		if meta.Files.Index == "" {
			err = addBaseCopies(dir, files)
		} else {
			err = addBaseIndex(dir, meta.Files.Index, meta.Encryption != nil, files)
		}
		if err != nil {
			return "", err
		}
		return name, nil
	}
	return "", nil
}

// checkBaseIndex checks a base's manifest against its metadata and its index against the
// manifest.
func checkBaseIndex(ctx context.Context, dir string, meta *layout.Metadata) error {
	f, err := storage.OpenRegular(filepath.Join(dir, layout.FileSums))
	if err != nil {
		return err
	}
	defer f.Close()
	want := ""
	sum, err := layout.HashSums(f, func(p, s string) error {
		if p == meta.Files.Index {
			want = s
		}
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	if sum != meta.ManifestSHA256 {
		return fmt.Errorf("%s has sha256 %s, the metadata says %s", layout.FileSums, sum, meta.ManifestSHA256)
	}
	if meta.Files.Index == "" {
		return nil // self-indexed: its manifest lists its copies, which are here
	}
	got, _, err := layout.HashFile(ctx, filepath.Join(dir, meta.Files.Index))
	if err != nil {
		return err
	}
	if want == "" || got != want {
		return fmt.Errorf("%s has sha256 %s, %s says %q", meta.Files.Index, got, layout.FileSums, want)
	}
	return nil
}

// addBaseIndex adds the base's index entries (path → sum and copy) to files, their sums from
// its SHA256SUMS where the index leaves them out; an entry without one is not added (never
// linked). The base is a local folder, whose copies are at the paths its index and
// SHA256SUMS list: its entries' stored names are where the files were in the backup it was
// copied from (an object store's objects/sha256/…), not here. The index records a file's
// size before encryption: the copies of a base whose files are encrypted (sealed) are taken
// at their size on disk, which the worker checks as it links them.
func addBaseIndex(dir, index string, sealed bool, files *extsort.Sorter) error {
	f, err := storage.OpenRegular(filepath.Join(dir, index))
	if err != nil {
		return err
	}
	defer f.Close()
	sums := layout.NewSumsJoin(func() (io.ReadCloser, error) { return storage.OpenRegular(filepath.Join(dir, layout.FileSums)) })
	defer sums.Close()
	return layout.ReadFileIndex(f, func(e messages.FileEntry) error {
		if err := sums.Fill(&e); err != nil {
			return err
		}
		if e.SHA256 == "" {
			return nil
		}
		if sealed {
			return addBaseCopy(dir, e.Path, e.SHA256, files)
		}
		return files.Add(e.Path, []byte("B"+e.SHA256+"\x00"+strconv.FormatInt(e.Size, 10)+"\x00"+e.Path))
	})
}

// hasIndex tells whether a backup can say what files it holds: a file index, or its copies
// themselves (self-indexed).
func hasIndex(meta *layout.Metadata) bool {
	return meta.Files.Index != "" || meta.Files.SelfIndexed
}

// addBaseCopies is addBaseIndex for a self-indexed base: its SHA256SUMS lines under files/,
// each with its copy's size (a copy gone is not added: never linked).
func addBaseCopies(dir string, files *extsort.Sorter) error {
	f, err := storage.OpenRegular(filepath.Join(dir, layout.FileSums))
	if err != nil {
		return err
	}
	defer f.Close()
	return layout.EachSum(f, func(rel, sum string) error {
		if !strings.HasPrefix(rel, layout.FilesDir+"/") {
			return nil
		}
		return addBaseCopy(dir, rel, sum, files)
	})
}

// addBaseCopy adds the base's copy at rel, with its size on disk (a copy gone or not a
// regular file is not added: never linked).
func addBaseCopy(dir, rel, sum string, files *extsort.Sorter) error {
	fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	return files.Add(rel, []byte("B"+sum+"\x00"+strconv.FormatInt(fi.Size(), 10)+"\x00"+rel))
}

// newCopySorter returns the sorter a copy joins its files through, spilling into the local
// staging folder's working files, else a temporary folder named after this process.
func newCopySorter(d destination) (*extsort.Sorter, func(), error) {
	var dir string
	var err error
	if l, ok := d.(*localDestination); ok {
		dir = filepath.Join(l.Location(), internalDir, "copy-runs")
		err = os.MkdirAll(dir, 0o700)
	} else {
		dir, err = scratch.MkdirTemp("", "wnb-copy-")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sort runs: %w", err)
	}
	s := extsort.New(dir, sumsBudget())
	return s, func() {
		s.Close()
		os.RemoveAll(dir)
	}, nil
}

// copyTaskBuf is a task being filled, with its key list.
type copyTaskBuf struct {
	task *messages.Task
	list strings.Builder
	lw   *messages.FileListWriter
}

// copyCutter cuts entries into copy-backup tasks of at most per files, one series per group.
type copyCutter struct {
	run     string
	dest    *storage.Bucket
	destURL string
	per     int
	seq     map[string]int
	cur     map[string]*copyTaskBuf
	order   []string
	tasks   []*messages.Task
}

// add puts e in its group's current task, starting one when needed.
func (p *copyCutter) add(ctx context.Context, group, source, base, objects string, e messages.FileEntry) error {
	pt := p.cur[group]
	if pt != nil && pt.task.Copy.Keys >= p.per {
		if err := p.flush(ctx, group); err != nil {
			return err
		}
		pt = nil
	}
	if pt == nil {
		if p.seq == nil {
			p.seq = map[string]int{}
		}
		if _, seen := p.seq[group]; !seen {
			p.order = append(p.order, group)
		}
		id := taskID("copy", group, fmt.Sprintf("%04d", p.seq[group]))
		p.seq[group]++
		pt = &copyTaskBuf{task: &messages.Task{
			Version: messages.Version, Run: p.run, ID: id, Kind: messages.KindCopyBackup, Dest: p.destURL,
			Copy: &messages.CopyTask{Source: source, Prefix: group, Base: base, Objects: objects,
				KeyList: path.Join(internalDir, "keys", id+".jsonl")},
		}}
		pt.lw = messages.NewFileListWriter(&pt.list)
		p.cur[group] = pt
	}
	pt.task.Copy.Keys++
	return pt.lw.Add(e)
}

// flush writes the group's current task's key list and adds the task to the plan.
func (p *copyCutter) flush(ctx context.Context, group string) error {
	pt := p.cur[group]
	if pt == nil {
		return nil
	}
	delete(p.cur, group)
	if err := pt.lw.Flush(); err != nil {
		return err
	}
	if _, err := p.dest.Put(ctx, pt.task.Copy.KeyList, strings.NewReader(pt.list.String()), storage.Object{Mode: 0o600}); err != nil {
		return fmt.Errorf("write key list: %w", err)
	}
	p.tasks = append(p.tasks, pt.task)
	return nil
}

// finish flushes every group and returns the tasks.
func (p *copyCutter) finish(ctx context.Context) ([]*messages.Task, error) {
	for _, g := range p.order {
		if err := p.flush(ctx, g); err != nil {
			return nil, err
		}
	}
	return p.tasks, nil
}

// verifyArchiveSource reads an archive backup through once: its metadata must be complete,
// its SHA256SUMS must have the metadata's manifest_sha256, and every file in it must be
// listed there with its sum (none missing). It returns the metadata and the archive's own
// SHA-256, which its copy is checked against on arrival.
func verifyArchiveSource(ctx context.Context, root *storage.Bucket, name string) (*layout.Metadata, string, error) {
	rc, _, err := root.Open(ctx, name)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: no archive %s", name)
	} else if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	whole := sha256.New()
	in := io.TeeReader(rc, whole)
	gz, err := gzip.NewReader(in)
	if err != nil {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: %s is not a gzip stream: %w", name, err)
	}
	a, err := newArchiveCheck()
	if err != nil {
		return nil, "", err
	}
	defer a.close()
	if err := a.read(ctx, tar.NewReader(gz)); err != nil {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: %s: %w", name, err)
	}
	if _, err := io.Copy(io.Discard, in); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", name, err)
	}
	if err := a.check(); err != nil {
		return nil, "", outcome.Errorf(outcome.Refused, "refused: %s: %w", name, err)
	}
	return a.meta, hex.EncodeToString(whole.Sum(nil)), nil
}

// archiveCheck gathers what an archive holds as it streams past. The manifest's lines and
// the entries' sums meet in one external sort, so that neither is held in memory (an archive
// may hold millions of files); a set of 8 bytes a path answers, at each header, whether the
// manifest lists it.
type archiveCheck struct {
	meta        *layout.Metadata
	manifest    string          // the hex SHA-256 of SHA256SUMS, once read
	listedPaths *layout.PathSet // the paths SHA256SUMS lists; nil until it is read
	// sums holds, by path, "L"+sum for a line of SHA256SUMS and "A"+sum for an entry of the
	// archive: a path's records come out together, to be compared.
	sums  *extsort.Sorter
	spill string
	// top and files are what SHA256SUMS lists outside files/, and how many files under it.
	top   map[string]bool
	files int64
}

// newArchiveCheck returns a check whose sort spills into a temporary folder of its own.
func newArchiveCheck() (*archiveCheck, error) {
	dir, err := scratch.MkdirTemp("", "wnb-archive-check-")
	if err != nil {
		return nil, fmt.Errorf("archive check: %w", err)
	}
	return &archiveCheck{sums: extsort.New(dir, sumsBudget()), spill: dir, top: map[string]bool{}}, nil
}

// close removes the sort's runs.
func (a *archiveCheck) close() {
	a.sums.Close()
	os.RemoveAll(a.spill)
}

// read hashes every regular entry of the archive.
func (a *archiveCheck) read(ctx context.Context, tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		_, rel, _ := strings.Cut(strings.TrimPrefix(hdr.Name, "./"), "/")
		if err := a.entry(rel, tr); err != nil {
			return err
		}
	}
}

// entry reads one regular entry: the metadata, the manifest, or a file to hash.
func (a *archiveCheck) entry(rel string, r io.Reader) error {
	switch rel {
	case layout.FileMetadata:
		data, err := storage.ReadLimited(r, layout.MaxMetadataSize)
		if err != nil {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		a.meta, err = layout.ParseMetadata(data)
		return err
	case layout.FileSums:
		set := layout.NewPathSet()
		manifest, err := layout.HashSums(r, func(p, sum string) error {
			set.Add(p)
			if strings.HasPrefix(p, layout.FilesDir+"/") {
				a.files++
			} else {
				a.top[p] = true
			}
			return a.sums.Add(p, []byte("L"+sum))
		})
		if err != nil {
			return err
		}
		a.manifest, a.listedPaths = manifest, set
		return nil
	}
	if err := a.listed(rel); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("read %s: %w", rel, err)
	}
	return a.sums.Add(rel, []byte("A"+hex.EncodeToString(h.Sum(nil))))
}

// listed refuses, at its header, an entry the manifest does not list, once the metadata and
// the manifest (first in every archive this tool writes) have been read and agree: reading
// it to its end first could take as long as its stated size (a 40 GB entry in a 41 MB
// archive), as a restore's or a verify's check would not.
func (a *archiveCheck) listed(rel string) error {
	if a.meta == nil || a.listedPaths == nil {
		return nil // an older layout: check decides at the end
	}
	if a.meta.ManifestSHA256 == "" || a.manifest != a.meta.ManifestSHA256 {
		return fmt.Errorf("%s has sha256 %s but the metadata's manifest_sha256 is %q (corrupt or tampered)", layout.FileSums, a.manifest, a.meta.ManifestSHA256)
	}
	if !a.listedPaths.Has(rel) {
		return fmt.Errorf("%s is in the archive but not in %s", rel, layout.FileSums)
	}
	return nil
}

// check compares what was read with the manifest and the metadata.
func (a *archiveCheck) check() error {
	switch {
	case a.meta == nil:
		return fmt.Errorf("no %s: an incomplete backup", layout.FileMetadata)
	case a.listedPaths == nil:
		return fmt.Errorf("no %s", layout.FileSums)
	case a.meta.ManifestSHA256 == "" || a.manifest != a.meta.ManifestSHA256:
		return fmt.Errorf("%s has sha256 %s but the metadata's manifest_sha256 is %q (corrupt or tampered)", layout.FileSums, a.manifest, a.meta.ManifestSHA256)
	}
	if err := manifestCovers(a.meta, a.top, a.files); err != nil {
		return err
	}
	var g pathSums
	err := a.sums.Each(func(p string, v []byte) error {
		if p != g.path || !g.any() {
			if err := g.check(); err != nil {
				return err
			}
			g = pathSums{path: p}
		}
		g.add(v)
		return nil
	})
	if err != nil {
		return err
	}
	return g.check()
}

// pathSums is what the manifest and the archive say of one path.
type pathSums struct {
	path             string
	listed, archived []string
}

func (g *pathSums) add(v []byte) {
	if v[0] == 'L' {
		g.listed = append(g.listed, string(v[1:]))
	} else {
		g.archived = append(g.archived, string(v[1:]))
	}
}

func (g *pathSums) any() bool { return len(g.listed)+len(g.archived) > 0 }

// check says what is wrong with the path, if anything (nothing before its first record).
func (g *pathSums) check() error {
	switch {
	case !g.any():
		return nil
	case len(g.listed) > 1:
		return fmt.Errorf("%s is listed twice in %s", g.path, layout.FileSums)
	case len(g.archived) > 1:
		return fmt.Errorf("%s is in the archive twice", g.path)
	case len(g.listed) == 0:
		return fmt.Errorf("%s is in the archive but not in %s", g.path, layout.FileSums)
	case len(g.archived) == 0:
		return fmt.Errorf("%s is listed in %s but not in the archive", g.path, layout.FileSums)
	case g.archived[0] != g.listed[0]:
		return fmt.Errorf("%s has sha256 %s, %s says %s", g.path, g.archived[0], layout.FileSums, g.listed[0])
	}
	return nil
}
