package coordinator

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// eachFile pushes the plaintext manifest's files/ entries in stored-path order.
func (d *restoreDecrypt) eachFile(fn func(stored, sum string) error) error {
	return d.plain.Each(func(stored, sum string) error {
		if !strings.HasPrefix(stored, layout.FilesDir+"/") {
			return nil
		}
		return fn(stored, sum)
	})
}

// storedFile is a file of a backup folder's files/ as the listing and SHA256SUMS have it.
type storedFile struct {
	size           int64
	sum            string
	inTree, listed bool
}

// sumPair is what an encrypted file must hash to: stored bytes and plaintext.
type sumPair struct{ stored, plain string }

// restoredName is the storage key an encrypted backup's file rel (files/NAME.age) restores to.
func restoredName(rel, names string) (string, error) {
	plain, ok := strings.CutSuffix(rel, encryption.Ext)
	if !ok {
		return "", fmt.Errorf("%s is not encrypted (no %s), though the backup is: nothing is restored", storage.QuoteKey(rel), encryption.Ext)
	}
	return restoredKey(plain, names)
}

// planEncryptedFolderFiles is planFolderFiles for an encrypted backup: the listing, SHA256SUMS
// and the plaintext manifest are joined as three streams, and every file is decrypted and
// checked against both its sums as the join reaches it. A file the manifest does not list is
// refused; the manifest's entries for files this backup does not hold (an older segment's)
// are passed over.
func planEncryptedFolderFiles(ctx context.Context, dir string, sums *layout.Sums, p *restorePlanner, names string, dec *restoreDecrypt) error {
	tree, err := sortedBackupFiles(ctx, dir, p.work.spill())
	if err != nil {
		return err
	}
	defer tree.Close()
	stored := func(fn func(rel string, f storedFile) error) error {
		return layout.Join(tree.Each, eachFileSum(sums), func(rel string, size []byte, inTree bool, sum string, listed bool) error {
			n, _ := binary.Varint(size)
			return fn(rel, storedFile{n, sum, inTree, listed})
		})
	}
	var missing missingFiles
	feed := func(send func(string, sumPair) error) error {
		return layout.Join(stored, dec.eachFile, func(rel string, f storedFile, known bool, plain string, _ bool) error {
			switch {
			case !known:
				return nil
			case !f.inTree:
				missing.add(storage.QuoteKey(rel))
				return nil
			case !f.listed:
				return fmt.Errorf("%s is not listed in %s: it cannot be verified", storage.QuoteKey(rel), layout.FileSums)
			}
			key, err := restoredName(rel, names)
			if err != nil {
				return err
			}
			if err := p.add(ctx, messages.FileEntry{Key: key, Size: f.size, SHA256: plain, Stored: rel}); err != nil {
				return err
			}
			return send(rel, sumPair{f.sum, plain})
		})
	}
	found := newAgeResults()
	hash := func(ctx context.Context, rel string) (string, int64, error) {
		name := filepath.Join(dir, filepath.FromSlash(rel))
		if dec.stage == nil {
			return found.hashFile(ctx, name, rel, dec.ids, nil)
		}
		key, err := restoredName(rel, names)
		if err != nil {
			return "", 0, err
		}
		mode, _ := p.modeOf(layout.FilesDir + "/" + key)
		return found.stageFile(ctx, name, rel, key, mode.Perm(), dec.ids, dec.stage)
	}
	if dec.stage != nil {
		p.staged = dec.stage.dir
	}
	err = layout.HashEachWith(ctx, hash, p.o.HashWorkers, feed, func(rel string, w sumPair, _ string, _ int64, err error) error {
		if err := found.check(rel, w.stored, w.plain, err); err != nil {
			return err
		}
		if dec.stage != nil {
			halt(ctx, "stage")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if dec.stage != nil {
		if err := dec.stage.sync(ctx); err != nil {
			return err
		}
	}
	if err := missing.err("backup"); err != nil {
		return err
	}
	return p.flush(ctx)
}

// indexedFile is a file of an object-store backup's index with its SHA256SUMS sum.
type indexedFile struct {
	e   messages.FileEntry
	sum string
}

// planEncryptedObjects is planObjectFiles for an encrypted backup: the index (plaintext sizes,
// ciphertext sums), SHA256SUMS and the plaintext manifest are joined, and every object is read,
// decrypted and checked against both sums before anything changes.
func planEncryptedObjects(ctx context.Context, name, index, root string, sums *layout.Sums, names string, p *restorePlanner, dec *restoreDecrypt) error {
	needed := extsort.New(p.work.spill(), restoreSortBudget)
	defer needed.Close()
	if dec.stage != nil {
		p.staged = dec.stage.dir
	}
	var missing missingFiles
	indexed := func(fn func(rel string, f indexedFile) error) error {
		return layout.Join(eachIndexEntry(name, index), eachFileSum(sums), func(rel string, e messages.FileEntry, inIndex bool, sum string, listed bool) error {
			q := storage.QuoteKey(rel)
			switch {
			case !inIndex:
				missing.add(q)
				return nil
			case !listed:
				return fmt.Errorf("%s is in %s but not listed in %s: it cannot be verified", q, index, layout.FileSums)
			case sum != e.SHA256:
				return fmt.Errorf("%s: %s has sha256 %s, %s says %s", q, index, e.SHA256, layout.FileSums, sum)
			}
			return fn(rel, indexedFile{e, sum})
		})
	}
	err := layout.Join(indexed, dec.eachFile, func(rel string, f indexedFile, known bool, plain string, _ bool) error {
		if !known {
			return nil
		}
		key, err := restoredName(rel, names)
		if err != nil {
			return err
		}
		obj := layout.ObjectKey(f.sum)
		mode := f.e.Mode
		if m, ok := p.modeOf(layout.FilesDir + "/" + key); ok {
			mode = uint32(m)
		}
		if err := needed.Add(obj+objectNeeded+rel, neededRecord(f.e.Size, mode, f.e.ModTime, plain)); err != nil {
			return err
		}
		return p.add(ctx, messages.FileEntry{Key: key, Stored: obj, Size: f.e.Size, SHA256: plain, Mode: f.e.Mode, ModTime: f.e.ModTime})
	})
	if err != nil {
		return err
	}
	if err := missing.err("file index " + index); err != nil {
		return err
	}
	if err := checkEncryptedObjects(ctx, root, needed, dec, names, p.o.HashWorkers); err != nil {
		return err
	}
	return p.flush(ctx)
}

// neededObject is a file's record in the object check: the object it needs, its stored
// path, plaintext size, mode to restore (0: the object's) and plaintext sum.
type neededObject struct {
	// plain is an encrypted file's plaintext sum; in a plain backup's restore, the file's key
	// (joinObjectIndex), which its object's name already checks.
	obj, rel, plain string
	size            int64
	mode            fs.FileMode
	// mtime is the file's recorded modification time (0: none): an object holds the content
	// of every file that has it, and its own time is one of theirs.
	mtime int64
}

// neededRecord is a file's record of the object check's sort, which parseNeeded reads.
func neededRecord(size int64, mode uint32, mtime int64, plain string) []byte {
	val := binary.AppendUvarint(binary.AppendVarint(nil, size), uint64(mode))
	return append(binary.AppendVarint(val, mtime), plain...)
}

// parseNeeded reads a file's record of the object check's sort.
func parseNeeded(k string, val []byte) neededObject {
	obj, rel, _ := strings.Cut(k, objectNeeded)
	size, n := binary.Varint(val)
	mode, m := binary.Uvarint(val[n:])
	mtime, t := binary.Varint(val[n+m:])
	return neededObject{obj: obj, rel: rel, plain: string(val[n+m+t:]), size: size, mode: fs.FileMode(mode).Perm(), mtime: mtime}
}

// checkEncryptedObjects lists the object store under root into needed and reads it in object
// order: each file needs the object listed just before it, larger than its plaintext, which is
// then read, decrypted and checked.
func checkEncryptedObjects(ctx context.Context, root string, needed *extsort.Sorter, dec *restoreDecrypt, names string, workers int) error {
	b, err := openObjects(ctx, root, needed)
	if err != nil {
		return err
	}
	defer b.Close()
	var (
		missing missingFiles
		attrs   sync.Map // each file's mode and time to restore (neededObject), from the feed to its hash
	)
	feed := func(send func(string, sumPair) error) error {
		return eachNeeded(needed, &missing, func(k string, f neededObject, objSize int64) error {
			if objSize <= f.size {
				return fmt.Errorf("%s: its object %s has %d bytes, not more than its plaintext's %d: truncated", storage.QuoteKey(f.rel), f.obj, objSize, f.size)
			}
			if dec.stage != nil {
				attrs.Store(k, f)
			}
			return send(k, sumPair{f.obj[strings.LastIndexByte(f.obj, '/')+1:], f.plain})
		})
	}
	found := newAgeResults()
	hash := func(ctx context.Context, k string) (string, int64, error) {
		obj, rel, _ := strings.Cut(k, objectNeeded)
		r, o, err := b.Open(ctx, obj)
		if err != nil {
			return "", 0, err
		}
		defer r.Close()
		rehash := func(ctx context.Context) (string, error) { return b.SHA256(ctx, obj) }
		if dec.stage == nil {
			return found.hash(ctx, k, r, dec.ids, nil, rehash)
		}
		key, err := restoredName(rel, names)
		if err != nil {
			return "", 0, err
		}
		staged := storage.Object{Mode: o.Mode.Perm(), ModTime: o.ModTime}
		if v, ok := attrs.LoadAndDelete(k); ok {
			f := v.(neededObject)
			if f.mode != 0 {
				staged.Mode = f.mode
			}
			if f.mtime != 0 {
				staged.ModTime = time.Unix(0, f.mtime)
			}
		}
		return found.stage(ctx, k, r, key, staged, dec.ids, dec.stage, rehash)
	}
	err = layout.HashEachWith(ctx, hash, workers, feed, func(k string, w sumPair, _ string, _ int64, err error) error {
		_, rel, _ := strings.Cut(k, objectNeeded)
		return found.checkAs(k, rel, w.stored, w.plain, err)
	})
	if err != nil {
		return err
	}
	if dec.stage != nil {
		if err := dec.stage.sync(ctx); err != nil {
			return err
		}
	}
	if missing.n > 0 {
		return fmt.Errorf("%d files of the backup have no object in the object store %s, e.g. %s", missing.n, b, missing.first)
	}
	return nil
}
