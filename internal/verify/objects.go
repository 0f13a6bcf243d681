package verify

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// CheckObjects is the check of an object-store backup's files: every file its index lists
// has its object in the destination's object store, with its size and (read in full) its sum.
const CheckObjects = "objects"

// objectStore reports whether the backup's files are in the destination's object store.
func (v *verifier) objectStore() bool {
	return v.meta != nil && v.meta.Files.Store == layout.StoreObjects
}

// objectsRoot is the destination root whose object store holds the backup's files.
func (v *verifier) objectsRoot() string {
	if v.o.Objects != "" {
		return v.o.Objects
	}
	return filepath.Dir(v.dir) // a backup folder in a local destination
}

// Records of the object check's sort: an object found in the store sorts before the index
// entries that need it.
const (
	tagListed = "\x00"
	tagNeeded = "\x01"
)

// objectJob is one object to hash, for the first file of the index that needs it.
type objectJob struct {
	path, sum string
}

// checkObjects checks an object-store backup's files: the index against SHA256SUMS (the same
// files with the same sums), then the index, sorted by object key, against a listing of the
// store (every object exists with its size), hashing each object needed once. Only the
// external sort's runs grow with the number of files. The error is ctx's, or the sort's.
func (v *verifier) checkObjects(ctx context.Context) error {
	root := v.objectsRoot()
	index := v.meta.Files.Index
	if index == "" {
		index = layout.FileIndex
	}
	v.files, v.bytes = 0, 0
	if !v.present(index) {
		v.add(CheckObjects, false, "no file index", []string{fmt.Sprintf("%s: missing: %s says the files are in the object store", index, layout.FileMetadata)})
		return nil
	}
	b, err := storage.Open(ctx, root)
	if err != nil {
		v.add(CheckObjects, false, "object store unreadable", []string{fmt.Sprintf("%s: cannot open the object store: %v", layout.ObjectsDir, err)})
		return nil
	}
	defer b.Close()
	needed := extsort.New(v.spill, sortBudget)
	defer needed.Close()
	problems, err := v.joinIndex(filepath.Join(v.dir, filepath.FromSlash(index)), index, needed)
	if err != nil {
		problems = append(problems, problem{index, fmt.Sprintf("%s: %v", index, err)})
	}
	if err := b.Walk(ctx, layout.ObjectsDir+"/", func(o storage.Object) error {
		return needed.Add(o.Key+tagListed, binary.AppendVarint(nil, o.Size))
	}); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		problems = append(problems, problem{layout.ObjectsDir, fmt.Sprintf("%s: cannot list the object store: %v", layout.ObjectsDir, err)})
	}
	found, hashed, err := v.matchObjects(ctx, b, needed)
	if err != nil {
		return err
	}
	problems = append(problems, found...)
	detail := fmt.Sprintf("%d files in %s, objects %s hashed", v.files, index, humanBytes(hashed))
	v.add(CheckObjects, true, detail, sortedMessages(problems))
	return nil
}

// joinIndex reads the file index in path order beside SHA256SUMS's files/ lines: each file
// must be in both with the same sum. It adds every entry to needed, keyed by its object, and
// counts the files and bytes for the files check.
func (v *verifier) joinIndex(name, index string, needed *extsort.Sorter) ([]problem, error) {
	var problems []problem
	eachIndex := func(fn func(p string, e messages.FileEntry) error) error {
		f, err := storage.OpenRegular(name)
		if err != nil {
			return pathless(err)
		}
		defer f.Close()
		first, prev := true, ""
		return messages.ReadFileList(layout.DecompressIndex(f), func(e messages.FileEntry) error {
			if !first && e.Path <= prev {
				return fmt.Errorf("%s comes after %s: not sorted by path, or listed twice", storage.QuoteKey(e.Path), storage.QuoteKey(prev))
			}
			first, prev = false, e.Path
			return fn(e.Path, e)
		})
	}
	eachSum := func(fn func(p, sum string) error) error {
		if v.sums == nil {
			return nil
		}
		return v.sums.Each(func(p, sum string) error {
			if !strings.HasPrefix(p, layout.FilesDir+"/") {
				return nil
			}
			return fn(p, sum)
		})
	}
	err := layout.Join(eachIndex, eachSum, func(p string, e messages.FileEntry, inIndex bool, sum string, listed bool) error {
		q := storage.QuoteKey(p)
		switch {
		case !inIndex:
			problems = append(problems, problem{p, fmt.Sprintf("%s: listed in %s but not in %s", q, layout.FileSums, index)})
			return nil
		case !listed && v.sums != nil:
			problems = append(problems, problem{p, fmt.Sprintf("%s: in %s but not listed in %s", q, index, layout.FileSums)})
		case listed && sum != e.SHA256:
			problems = append(problems, problem{p, fmt.Sprintf("%s: %s has sha256 %s, %s has %s", q, index, e.SHA256, layout.FileSums, sum)})
		}
		if !strings.HasPrefix(p, layout.FilesDir+"/") || !isHexSum(e.SHA256) {
			problems = append(problems, problem{p, fmt.Sprintf("%s: bad entry in %s (path under %s/ and sha256 of 64 hex digits wanted)", q, index, layout.FilesDir)})
			return nil
		}
		v.files++
		v.bytes += e.Size
		return needed.Add(layout.ObjectKey(e.SHA256)+tagNeeded+p, binary.AppendVarint(nil, e.Size))
	})
	return problems, err
}

// matchObjects reads needed in object order: each file needs the object listed just before
// it, with its size; each object needed is hashed once, with v.o.Workers reads at a time.
func (v *verifier) matchObjects(ctx context.Context, b *storage.Bucket, needed *extsort.Sorter) (problems []problem, hashed int64, err error) {
	var matchProblems []problem
	feed := func(send func(string, objectJob) error) error {
		cur, curSize, sent := "", int64(0), false
		return needed.Each(func(k string, val []byte) error {
			size, _ := binary.Varint(val)
			if strings.HasSuffix(k, tagListed) {
				cur, curSize, sent = strings.TrimSuffix(k, tagListed), size, false
				return nil
			}
			i := strings.Index(k, tagNeeded)
			obj, p := k[:i], k[i+1:]
			q := storage.QuoteKey(p)
			switch {
			case obj != cur:
				matchProblems = append(matchProblems, problem{p, fmt.Sprintf("%s: its object %s is missing from the object store", q, obj)})
			case v.encrypted() && curSize <= size:
				// The index has the plaintext's size; the object, its ciphertext, is larger.
				matchProblems = append(matchProblems, problem{p, fmt.Sprintf("%s: its object %s has %d bytes, not more than the plaintext's %d in %s: truncated", q, obj, curSize, size, layout.FileIndex)})
			case !v.encrypted() && curSize != size:
				matchProblems = append(matchProblems, problem{p, fmt.Sprintf("%s: its object %s has %d bytes, %s says %d", q, obj, curSize, layout.FileIndex, size)})
			case !sent:
				sent = true
				return send(obj, objectJob{path: p, sum: obj[strings.LastIndexByte(obj, '/')+1:]})
			}
			return nil
		})
	}
	hash := func(ctx context.Context, key string) (string, int64, error) {
		r, _, err := b.Open(ctx, key)
		if err != nil {
			return "", 0, err
		}
		defer r.Close()
		return layout.HashReader(ctx, r)
	}
	err = layout.HashEachWith(ctx, hash, v.o.Workers, feed, func(obj string, j objectJob, sum string, n int64, err error) error {
		hashed += n
		q := storage.QuoteKey(j.path)
		switch {
		case err != nil:
			problems = append(problems, problem{j.path, fmt.Sprintf("%s: cannot read its object %s: %v", q, obj, pathless(err))})
		case sum != j.sum:
			problems = append(problems, problem{j.path, fmt.Sprintf("%s: checksum mismatch: its object %s has sha256 %s", q, obj, sum)})
		}
		return nil
	})
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("check objects: %w", err)
	}
	return append(problems, matchProblems...), hashed, nil
}

// isHexSum reports whether s is 64 lower-case hex digits.
func isHexSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
