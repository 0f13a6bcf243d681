package coordinator

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore plans its files as streams: the backup's listing (walk order is not SHA256SUMS's)
// is sorted on disk and joined with SHA256SUMS read line by line, and each file joined goes
// into its task's key list on disk, so the coordinator's memory does not grow with the
// number of files.

// restoreSortBudget is the memory an external sort of a restore keeps before it spills a run.
const restoreSortBudget = 8 << 20

// restoreWork is a restore's private folder: the sorts' runs and the tasks' key lists.
type restoreWork struct {
	dir   string
	lists *storage.Bucket
	// live, in a selective restore, compares each planned file with the storage's copy.
	live *liveFiles
	// stage, if set, holds a plain object-store backup's files, read and checked by the check
	// pass, for the workers to link (restore_objects_stage.go).
	stage *restoreStage
}

func newRestoreWork(ctx context.Context, tempDir string) (*restoreWork, error) {
	dir, err := scratch.MkdirTemp(tempDir, "wnb-restore-lists-")
	if err != nil {
		return nil, fmt.Errorf("restore work folder: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sort"), 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("restore work folder: %w", err)
	}
	lists, err := storage.Open(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &restoreWork{dir: dir, lists: lists}, nil
}

// spill is the folder of the external sorts' runs.
func (w *restoreWork) spill() string { return filepath.Join(w.dir, "sort") }

func (w *restoreWork) close() {
	if w == nil {
		return
	}
	w.stage.close()
	w.lists.Close()
	os.RemoveAll(w.dir)
}

// restoring says the files are being restored now: the storage root the stage made stays.
func (w *restoreWork) restoring() {
	if w != nil && w.stage != nil {
		w.stage.keepRoot = true
	}
}

// restorePlanner cuts the files to restore into tasks of o.FilesPerTask as they come, writing
// each task's key list when it is full.
type restorePlanner struct {
	o      RestoreOptions
	work   *restoreWork
	source string // the tasks' Source: the backup folder, or the object store's root
	prefix string // the tasks' SourcePrefix
	modeOf func(p string) (fs.FileMode, bool)
	plan   *RestorePlan
	// decrypt: the backup's files are age-encrypted (the tasks' Decrypt).
	decrypt bool
	// staged is the folder of the files the check pass decrypted (the tasks' Staged).
	staged string
	// link: the source is the run's own unpacked copy, checked as planned, whose files the
	// workers may link into the storage (the tasks' LinkSource, see linksUnpacked).
	link  bool
	tasks []*messages.Task

	cur *messages.Task
	buf bytes.Buffer
	lw  *messages.FileListWriter
}

func newRestorePlanner(o RestoreOptions, work *restoreWork, source, prefix string, meta *layout.Metadata, plan *RestorePlan) *restorePlanner {
	files := &meta.Files
	if meta.Encryption != nil {
		files = files.PlainNames()
	}
	if plan.space == nil {
		plan.space = newSpaceTally(o.StorageURL)
	}
	return &restorePlanner{o: o, work: work, source: source, prefix: prefix, modeOf: files.RecordedModes(), plan: plan, decrypt: meta.Encryption != nil}
}

// add plans one file; e.Mode, if set, is the mode to restore when the metadata records none.
func (p *restorePlanner) add(ctx context.Context, e messages.FileEntry) error {
	if e.Key == StorageLockKey && storage.IsS3(p.o.StorageURL) {
		// Written, it would replace the restore's own lock, which would then stop the restore.
		p.plan.Warnings = append(p.plan.Warnings, fmt.Sprintf("file %s is not restored: it has the name of the restore's lock in an S3 storage", StorageLockKey))
		return nil
	}
	if p.work.live != nil {
		if ok, err := p.work.live.restores(ctx, e); err != nil || !ok {
			return err
		}
	}
	if m, ok := p.modeOf(layout.FilesDir + "/" + e.Key); ok {
		e.Mode = uint32(m)
	}
	if p.cur == nil {
		id := taskID("restore", topName(e.Key), fmt.Sprintf("%04d", len(p.tasks)))
		p.cur = &messages.Task{
			Version: messages.Version, Run: p.o.RunID, ID: id, Kind: messages.KindRestorePrefix, Dest: p.o.StorageURL,
			Copy: &messages.CopyTask{
				Source: p.source, SourcePrefix: p.prefix, Prefix: topPrefix(e.Key),
				ListStore: p.work.dir, KeyList: path.Join("keys", id+".jsonl"), Decrypt: p.decrypt, Staged: p.staged,
				LinkSource: p.link,
			},
		}
		p.buf.Reset()
		p.lw = messages.NewFileListWriter(&p.buf)
	}
	if err := p.lw.Add(e); err != nil {
		return err
	}
	p.cur.Copy.Keys++
	p.cur.Copy.Bytes += e.Size
	p.plan.Files++
	p.plan.Bytes += e.Size
	p.plan.space.file(e.Key, e.Size)
	if p.cur.Copy.Keys >= p.o.FilesPerTask {
		return p.flush(ctx)
	}
	return nil
}

// flush writes the key list of the task being filled.
func (p *restorePlanner) flush(ctx context.Context) error {
	if p.cur == nil {
		return nil
	}
	if err := p.lw.Flush(); err != nil {
		return err
	}
	if _, err := p.work.lists.Put(ctx, p.cur.Copy.KeyList, bytes.NewReader(p.buf.Bytes()), storage.Object{Mode: 0o600}); err != nil {
		return fmt.Errorf("write key list %s: %w", p.cur.Copy.KeyList, err)
	}
	p.tasks = append(p.tasks, p.cur)
	p.cur = nil
	return nil
}

// sortedBackupFiles lists files/ of the backup folder dir into a sorter (key: path, value:
// size), in the order SHA256SUMS has.
func sortedBackupFiles(ctx context.Context, dir, spill string) (*extsort.Sorter, error) {
	b, err := storage.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	tree := extsort.New(spill, restoreSortBudget)
	err = b.Walk(ctx, layout.FilesDir+"/", func(o storage.Object) error {
		return tree.Add(o.Key, binary.AppendVarint(nil, o.Size))
	})
	if err != nil {
		tree.Close()
		return nil, fmt.Errorf("list %s/: %w", layout.FilesDir, err)
	}
	return tree, nil
}

// eachFileSum pushes SHA256SUMS's lines under files/ in path order (none without sums).
func eachFileSum(sums *layout.Sums) func(fn func(p, sum string) error) error {
	return func(fn func(p, sum string) error) error {
		if sums == nil {
			return nil
		}
		return sums.Each(func(p, sum string) error {
			if !strings.HasPrefix(p, layout.FilesDir+"/") {
				return nil
			}
			return fn(p, sum)
		})
	}
}

// missingFiles counts the files SHA256SUMS lists that a backup lacks, keeping the first.
type missingFiles struct {
	n     int
	first string
}

func (m *missingFiles) add(p string) {
	if m.n == 0 {
		m.first = p
	}
	m.n++
}

func (m *missingFiles) err(from string) error {
	if m.n == 0 {
		return nil
	}
	return fmt.Errorf("%d files listed in %s are missing from the %s, e.g. %s", m.n, layout.FileSums, from, m.first)
}

// planFolderFiles plans the files of a backup folder's files/ and hashes each against
// SHA256SUMS as the join reaches it: a file SHA256SUMS does not list, one it lists that is
// missing, and one whose sum differs are each refused, naming it.
func planFolderFiles(ctx context.Context, dir string, sums *layout.Sums, p *restorePlanner, names string, dec *restoreDecrypt) error {
	if dec != nil {
		return planEncryptedFolderFiles(ctx, dir, sums, p, names, dec)
	}
	tree, err := sortedBackupFiles(ctx, dir, p.work.spill())
	if err != nil {
		return err
	}
	defer tree.Close()
	var missing missingFiles
	feed := func(send func(string, string) error) error {
		return layout.Join(tree.Each, eachFileSum(sums), func(rel string, size []byte, inTree bool, sum string, listed bool) error {
			switch {
			case !inTree:
				missing.add(storage.QuoteKey(rel))
				return nil
			case !listed && sums != nil:
				return fmt.Errorf("%s is not listed in %s: it cannot be verified", storage.QuoteKey(rel), layout.FileSums)
			}
			key, err := restoredKey(rel, names)
			if err != nil {
				return err
			}
			n, _ := binary.Varint(size)
			e := messages.FileEntry{Key: key, Size: n, SHA256: sum}
			if key != strings.TrimPrefix(rel, layout.FilesDir+"/") {
				e.Stored = rel
			}
			if err := p.add(ctx, e); err != nil {
				return err
			}
			if sums == nil {
				return nil
			}
			return send(rel, sum)
		})
	}
	err = layout.HashEach(ctx, dir, p.o.HashWorkers, feed, func(rel, want, got string, _ int64, err error) error {
		switch {
		case err != nil:
			return fmt.Errorf("check %s: %w", rel, err)
		case got != want:
			return fmt.Errorf("%s is corrupt: its SHA-256 is %s, SHA256SUMS says %s", rel, got, want)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := missing.err("backup"); err != nil {
		return err
	}
	return p.flush(ctx)
}

// Records of the object check's sort: an object found in the store sorts before the files
// that need it.
const (
	objectListed = "\x00"
	objectNeeded = "\x01"
)

// planObjectFiles plans the files of an object-store backup: its file index, checked against
// its SHA256SUMS line first, is joined with SHA256SUMS's files/ lines (the same files with the
// same sums), and each file is restored from its object under root (the destination's root).
// Before anything changes every object must exist with its size. Into a local storage, the
// check pass also reads each one into the storage's staging folder, checked against its sum
// (stageObjects); otherwise the workers check each one's sum as they copy it, and never write
// a file whose sum differs.
func planObjectFiles(ctx context.Context, dir, root string, sums *layout.Sums, meta *layout.Metadata, p *restorePlanner, dec *restoreDecrypt) error {
	index := meta.Files.Index
	if index == "" {
		index = layout.FileIndex
	}
	if sums == nil {
		return fmt.Errorf("%s is missing: the files of this object-store backup cannot be verified", layout.FileSums)
	}
	if err := checkSums(ctx, dir, sums, meta, []string{index}, 1); err != nil {
		return err
	}
	if dec != nil {
		return planEncryptedObjects(ctx, filepath.Join(dir, filepath.FromSlash(index)), index, root, sums, meta.Files.NameEncoding, p, dec)
	}
	needed := extsort.New(p.work.spill(), restoreSortBudget)
	defer needed.Close()
	if st := p.work.stage; st != nil {
		p.staged = st.dir
	}
	if err := joinObjectIndex(ctx, filepath.Join(dir, filepath.FromSlash(index)), index, sums, meta.Files.NameEncoding, p, needed); err != nil {
		return err
	}
	if err := checkObjects(ctx, root, needed, p.work.stage, p.o.HashWorkers); err != nil {
		return err
	}
	return p.flush(ctx)
}

// joinObjectIndex plans each file of the index, adding the object it needs to needed.
func joinObjectIndex(ctx context.Context, name, index string, sums *layout.Sums, names string, p *restorePlanner, needed *extsort.Sorter) error {
	var missing missingFiles
	err := layout.Join(eachIndexEntry(name, index), eachFileSum(sums), func(rel string, e messages.FileEntry, inIndex bool, sum string, listed bool) error {
		q := storage.QuoteKey(rel)
		switch {
		case !inIndex:
			missing.add(storage.QuoteKey(rel))
			return nil
		case !listed:
			return fmt.Errorf("%s is in %s but not listed in %s: it cannot be verified", q, index, layout.FileSums)
		case sum != e.SHA256:
			return fmt.Errorf("%s: %s has sha256 %s, %s says %s", q, index, e.SHA256, layout.FileSums, sum)
		}
		key, err := restoredKey(rel, names)
		if err != nil {
			return err
		}
		obj := layout.ObjectKey(sum)
		mode := e.Mode
		if m, ok := p.modeOf(layout.FilesDir + "/" + key); ok {
			mode = uint32(m)
		}
		// The record's last field, an encrypted backup's plaintext sum, is the key here.
		if err := needed.Add(obj+objectNeeded+rel, neededRecord(e.Size, mode, e.ModTime, key)); err != nil {
			return err
		}
		return p.add(ctx, messages.FileEntry{Key: key, Stored: obj, Size: e.Size, SHA256: sum, Mode: e.Mode, ModTime: e.ModTime})
	})
	if err != nil {
		return err
	}
	return missing.err("file index " + index)
}

// eachIndexEntry pushes the entries of the file index at name in path order, refusing one
// out of order or listed twice.
func eachIndexEntry(name, index string) func(fn func(p string, e messages.FileEntry) error) error {
	return func(fn func(p string, e messages.FileEntry) error) error {
		f, err := storage.OpenRegular(name)
		if err != nil {
			return err
		}
		defer f.Close()
		first, prev := true, ""
		return messages.ReadFileList(layout.DecompressIndex(f), func(e messages.FileEntry) error {
			if !first && e.Path <= prev {
				return fmt.Errorf("%s: %s comes after %s: not sorted by path, or listed twice", index, storage.QuoteKey(e.Path), storage.QuoteKey(prev))
			}
			first, prev = false, e.Path
			return fn(e.Path, e)
		})
	}
}

// openObjects opens the object store under root (the destination holding an object-store
// backup) and adds each of its objects to needed, sorted after the files that need it, with
// its size.
func openObjects(ctx context.Context, root string, needed *extsort.Sorter) (*storage.Bucket, error) {
	b, err := storage.Open(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	err = b.Walk(ctx, layout.ObjectsDir+"/", func(o storage.Object) error {
		return needed.Add(o.Key+objectListed, binary.AppendVarint(nil, o.Size))
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("list the object store %s: %w", b, err)
	}
	return b, nil
}

// checkObjects lists the object store under root into needed and reads it in object order:
// each file needs the object listed just before it, with its size. With a stage, each file's
// object is then read into it and checked against its sum (stageObjects).
func checkObjects(ctx context.Context, root string, needed *extsort.Sorter, st *restoreStage, workers int) error {
	b, err := openObjects(ctx, root, needed)
	if err != nil {
		return err
	}
	defer b.Close()
	var missing missingFiles
	feed := func(send func(string, neededObject) error) error {
		return eachNeeded(needed, &missing, func(k string, f neededObject, objSize int64) error {
			switch {
			case objSize != f.size:
				return fmt.Errorf("%s: its object %s has %d bytes, the file index says %d", storage.QuoteKey(f.rel), f.obj, objSize, f.size)
			case st == nil:
				return nil
			}
			return send(k, f)
		})
	}
	if err := stageObjects(ctx, b, st, workers, feed); err != nil {
		return err
	}
	if missing.n > 0 {
		return fmt.Errorf("%d files of the backup have no object in the object store %s, e.g. %s", missing.n, b, missing.first)
	}
	return nil
}

// eachNeeded reads needed in object order (see openObjects) and calls fn with each file's
// record and the size of the object listed just before it, its own; a file whose object is
// not listed goes to missing instead.
func eachNeeded(needed *extsort.Sorter, missing *missingFiles, fn func(k string, f neededObject, objSize int64) error) error {
	cur, curSize := "", int64(0)
	return needed.Each(func(k string, val []byte) error {
		if obj, ok := strings.CutSuffix(k, objectListed); ok {
			cur = obj
			curSize, _ = binary.Varint(val)
			return nil
		}
		f := parseNeeded(k, val)
		if f.obj != cur {
			missing.add(storage.QuoteKey(f.rel) + " (object " + f.obj + ")")
			return nil
		}
		return fn(k, f, curSize)
	})
}
