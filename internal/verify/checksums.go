package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/dustin/go-humanize"

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

// walk lists the regular files of the backup folder, except the metadata and SHA256SUMS at its
// top, and reports anything else it finds (a symlink, an unreadable folder).
func (v *verifier) walk(ctx context.Context) (nonRegular map[string]bool, problems []problem, err error) {
	nonRegular = map[string]bool{}
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
			nonRegular[rel] = true
			problems = append(problems, problem{rel, fmt.Sprintf("%s: not a regular file (%v)", rel, d.Type())})
			return nil
		case rel == layout.FileMetadata || rel == layout.FileSums:
			return nil
		}
		info, err := d.Info()
		if err != nil {
			problems = append(problems, problem{rel, fmt.Sprintf("%s: cannot read: %v", rel, pathless(err))})
			return nil
		}
		v.tree = append(v.tree, entry{rel: rel, size: info.Size()})
		return nil
	})
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list files: %w", err)
	}
	return nonRegular, problems, nil
}

// pathless drops the (possibly temporary, always long) path from a file error.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readSums reads and parses SHA256SUMS, returning its checksums by path and the sha256 of the
// whole file. exists is false when there is none.
func (v *verifier) readSums() (sums map[string]string, manifest string, exists bool, err error) {
	name := filepath.Join(v.dir, layout.FileSums)
	if err := regular(name); errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, nil
	} else if err != nil {
		return nil, "", true, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, "", true, pathless(err)
	}
	defer f.Close()
	h := sha256.New()
	sums, err = layout.ParseSums(io.TeeReader(f, h))
	if err != nil {
		return nil, "", true, err
	}
	if _, err := io.Copy(h, f); err != nil { // what the parser left unread, if anything
		return nil, "", true, pathless(err)
	}
	return sums, hex.EncodeToString(h.Sum(nil)), true, nil
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
// is SHA256SUMS's.
func (v *verifier) checkChecksums(ctx context.Context) error {
	nonRegular, problems, err := v.walk(ctx)
	if err != nil {
		return err
	}
	v.nonRegular = nonRegular
	sums, manifest, hasSums, err := v.readSums()
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

	present := make(map[string]bool, len(v.tree))
	for _, e := range v.tree {
		present[e.rel] = true
	}
	for p := range sums {
		if !present[p] && !nonRegular[p] {
			problems = append(problems, problem{p, fmt.Sprintf("%s: listed in %s but missing", p, layout.FileSums)})
		}
	}
	modelSums := map[string]layout.ModelEntry{}
	if v.meta != nil {
		for _, m := range v.meta.Models {
			if m.SHA256 != "" {
				modelSums[m.File] = m
			}
		}
		if v.meta.WrittenByTool() && hasSums && sums != nil {
			switch {
			case v.meta.ManifestSHA256 == "":
				problems = append(problems, problem{layout.FileSums, fmt.Sprintf("%s: no manifest_sha256: %s is not tied to the metadata", layout.FileMetadata, layout.FileSums)})
			case v.meta.ManifestSHA256 != manifest:
				problems = append(problems, problem{layout.FileSums, fmt.Sprintf("%s: manifest_sha256 %s does not match %s (sha256 %s)",
					layout.FileMetadata, v.meta.ManifestSHA256, layout.FileSums, manifest)})
			}
		}
	}

	var jobs []hashJob
	var listed int
	for _, e := range v.tree {
		want, ok := sums[e.rel]
		if ok {
			listed++
		} else if sums != nil {
			problems = append(problems, problem{e.rel, fmt.Sprintf("%s: not listed in %s", e.rel, layout.FileSums)})
		}
		m := modelSums[e.rel]
		if want != "" || m.SHA256 != "" {
			jobs = append(jobs, hashJob{rel: e.rel, wantSums: want, wantMeta: m.SHA256, label: m.Label})
		}
	}
	hashProblems, hashed, err := v.hashAll(ctx, jobs)
	if err != nil {
		return err
	}
	problems = append(problems, hashProblems...)

	detail := fmt.Sprintf("%d of %d files listed in %s, %s hashed", listed, len(v.tree), layout.FileSums, humanBytes(hashed))
	if !hasSums {
		detail = fmt.Sprintf("no %s, %d files", layout.FileSums, len(v.tree))
	}
	v.add(CheckChecksums, true, detail, sortedMessages(problems))
	return nil
}

// hashAll hashes the jobs' files with o.Workers goroutines. The error is ctx's.
func (v *verifier) hashAll(ctx context.Context, jobs []hashJob) (problems []problem, hashed int64, err error) {
	byRel := make(map[string]hashJob, len(jobs))
	rels := make([]string, len(jobs))
	for i, j := range jobs {
		byRel[j.rel], rels[i] = j, j.rel
	}
	err = layout.HashFiles(ctx, v.dir, rels, v.o.Workers, func(rel, sum string, n int64, err error) error {
		problems = append(problems, checkHash(byRel[rel], sum, err)...)
		hashed += n
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return problems, hashed, nil
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
