package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
)

// problem is a problem with the path it is about, for sorting.
type problem struct {
	path, msg string
}

func sortedMessages(ps []problem) []string {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].path < ps[j].path })
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.msg
	}
	return out
}

// Kinds of the entries the walk records.
const (
	kindRegular    = 0
	kindNonRegular = 1
)

// walk lists the backup folder, except the metadata and SHA256SUMS at its top, into tree
// (sorted as it is read back: the walk's order is not SHA256SUMS's), and reports anything but
// regular files and folders (a symlink, an unreadable folder). It keeps in memory only the
// files outside files/ (fixtures and the like) and the count and bytes of those under it.
func (v *verifier) walk(ctx context.Context, tree *extsort.Sorter) (problems []problem, err error) {
	v.nonRegular = map[string]bool{}
	v.top = map[string]int64{}
	err = filepath.WalkDir(v.dir, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, rerr := filepath.Rel(v.dir, p)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			problems = append(problems, problem{rel, fmt.Sprintf("%s: cannot read: %v", rel, pathless(err))})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			v.nonRegular[rel] = true
			problems = append(problems, problem{rel, fmt.Sprintf("%s: not a regular file (%v)", rel, d.Type())})
			return tree.Add(rel, []byte{kindNonRegular})
		case rel == layout.FileMetadata || rel == layout.FileSums:
			return nil
		}
		info, err := d.Info()
		if err != nil {
			problems = append(problems, problem{rel, fmt.Sprintf("%s: cannot read: %v", rel, pathless(err))})
			return nil
		}
		v.treeFiles++
		if strings.HasPrefix(rel, layout.FilesDir+"/") {
			v.files++
			v.bytes += info.Size()
		} else {
			v.top[rel] = info.Size()
		}
		return tree.Add(rel, []byte{kindRegular})
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("list files: %w", err)
	}
	return problems, nil
}

// pathless drops the (possibly temporary, always long) path from a file error.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// openSums opens SHA256SUMS for streaming (see layout.OpenSums). exists is false when there
// is none.
func (v *verifier) openSums() (sums *layout.Sums, exists bool, err error) {
	name := filepath.Join(v.dir, layout.FileSums)
	if err := regular(name); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	} else if err != nil {
		return nil, true, err
	}
	sums, err = layout.OpenSums(name, v.spill)
	if err != nil {
		return nil, true, pathless(err)
	}
	return sums, true, nil
}

// hashJob is one file to hash and what its checksum should be.
type hashJob struct {
	rel      string
	wantSums string // from SHA256SUMS, "" if not listed
	wantMeta string // the metadata's model sha256, "" if none
	label    string // the model of wantMeta
}

// checkChecksums hashes every file SHA256SUMS or the metadata gives a checksum for, in
// parallel, and checks that SHA256SUMS lists every file and that the metadata's manifest_sha256
// is SHA256SUMS's. The folder's listing, sorted on disk, and SHA256SUMS, read from its file,
// are joined as two streams in path order: memory does not grow with the number of files.
func (v *verifier) checkChecksums(ctx context.Context) error {
	tree := extsort.New(v.spill, sortBudget)
	defer tree.Close()
	problems, err := v.walk(ctx, tree)
	if err != nil {
		return err
	}
	sums, hasSums, err := v.openSums()
	defer sums.Close()
	switch {
	case err != nil:
		problems = append(problems, problem{layout.FileSums, fmt.Sprintf("%s: %v", layout.FileSums, err)})
	case !hasSums && v.meta != nil && !v.meta.WrittenByTool() && !v.o.RequireChecksums:
		v.warn("%s", WarnNoSums)
	case !hasSums && v.o.RequireChecksums:
		problems = append(problems, problem{layout.FileSums, layout.FileSums + ": missing, and --require-checksums is set"})
	case !hasSums:
		problems = append(problems, problem{layout.FileSums, layout.FileSums + ": missing, but " + layout.FileMetadata + " says webnovel-backup wrote this backup: every check would be off"})
	}
	v.sums = sums
	problems = append(problems, v.checkManifest(sums)...)
	joined, err := v.joinAndHash(ctx, tree, sums)
	if err != nil {
		return err
	}
	problems = append(problems, joined.problems...)

	detail := fmt.Sprintf("%d of %d files listed in %s, %s hashed", joined.listed, v.treeFiles, layout.FileSums, humanBytes(joined.hashed))
	if sums == nil {
		detail = fmt.Sprintf("no %s, %d files", layout.FileSums, v.treeFiles)
	}
	v.add(CheckChecksums, true, detail, sortedMessages(problems))
	return nil
}

// sortBudget is the memory an external sort of verify keeps before it spills a run.
var sortBudget = 8 << 20

// checkManifest checks that the metadata's manifest_sha256 is SHA256SUMS's.
func (v *verifier) checkManifest(sums *layout.Sums) []problem {
	if v.meta == nil || !v.meta.WrittenByTool() || sums == nil {
		return nil
	}
	switch {
	case v.meta.ManifestSHA256 == "":
		return []problem{{layout.FileSums, fmt.Sprintf("%s: no manifest_sha256: %s is not tied to the metadata", layout.FileMetadata, layout.FileSums)}}
	case v.meta.ManifestSHA256 != sums.Manifest:
		return []problem{{layout.FileSums, fmt.Sprintf("%s: manifest_sha256 %s does not match %s (sha256 %s)",
			layout.FileMetadata, v.meta.ManifestSHA256, layout.FileSums, sums.Manifest)}}
	}
	return nil
}

// joined is what joining the folder's listing with SHA256SUMS found.
type joined struct {
	problems []problem
	listed   int
	hashed   int64
}

// joinAndHash walks the sorted listing and SHA256SUMS side by side: a path SHA256SUMS lists
// that is not there is missing, a file it does not list is reported, and every file with a
// checksum (SHA256SUMS's or the metadata's) is hashed as the join reaches it. Object-store
// files are not in the folder: their lines are checked against the file index instead.
func (v *verifier) joinAndHash(ctx context.Context, tree *extsort.Sorter, sums *layout.Sums) (*joined, error) {
	out := &joined{}
	modelSums := map[string]layout.ModelEntry{}
	if v.meta != nil {
		for _, m := range v.meta.Models {
			if m.SHA256 != "" {
				modelSums[m.File] = m
			}
		}
	}
	objects := v.objectStore()
	eachSum := func(fn func(p, sum string) error) error {
		if sums == nil {
			return nil
		}
		return sums.Each(func(p, sum string) error { return fn(p, sum) })
	}
	feed := func(problems *[]problem, send func(string, hashJob) error) error {
		return layout.Join(tree.Each, eachSum, func(p string, kind []byte, inTree bool, want string, listed bool) error {
			switch {
			case !inTree:
				if !v.nonRegular[p] && !(objects && strings.HasPrefix(p, layout.FilesDir+"/")) {
					*problems = append(*problems, problem{p, fmt.Sprintf("%s: listed in %s but missing", p, layout.FileSums)})
				}
				return nil
			case kind[0] != kindRegular:
				return nil
			case listed:
				out.listed++
			case sums != nil:
				*problems = append(*problems, problem{p, fmt.Sprintf("%s: not listed in %s", p, layout.FileSums)})
			}
			m := modelSums[p]
			if want == "" && m.SHA256 == "" {
				return nil
			}
			return send(p, hashJob{rel: p, wantSums: want, wantMeta: m.SHA256, label: m.Label})
		})
	}
	// The join runs in this goroutine and the hashes' results in the workers (one at a
	// time): each has its own list of problems.
	var joinProblems []problem
	err := layout.HashEach(ctx, v.dir, v.o.Workers, func(send func(string, hashJob) error) error {
		return feed(&joinProblems, send)
	}, func(_ string, j hashJob, sum string, n int64, err error) error {
		out.problems = append(out.problems, checkHash(j, sum, err)...)
		out.hashed += n
		return nil
	})
	out.problems = append(out.problems, joinProblems...)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, layout.ErrListedTwice):
		out.problems = append(out.problems, problem{layout.FileSums, err.Error()})
	case err != nil:
		return nil, err
	}
	return out, nil
}

// checkHash compares one file's hash with what SHA256SUMS and the metadata say.
func checkHash(j hashJob, sum string, err error) []problem {
	if err != nil {
		return []problem{{j.rel, fmt.Sprintf("%s: cannot read: %v", j.rel, pathless(err))}}
	}
	var ps []problem
	if j.wantSums != "" && sum != j.wantSums {
		ps = append(ps, problem{j.rel, fmt.Sprintf("%s: checksum mismatch: %s has %s, file has %s", j.rel, layout.FileSums, j.wantSums, sum)})
	}
	if j.wantMeta != "" && sum != j.wantMeta {
		ps = append(ps, problem{j.rel, fmt.Sprintf("%s (%s): checksum mismatch: %s has sha256 %s, file has %s", j.rel, j.label, layout.FileMetadata, j.wantMeta, sum)})
	}
	return ps
}

// humanBytes prints a size in binary units for people ("1.5 KiB").
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
