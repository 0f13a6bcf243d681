package retention

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path"
	"strings"
	"time"

	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// The object store's garbage collection is a mark and sweep. The marks are every sum that a
// complete backup's file index names, and every sum that a staging area's key lists and sums
// name (the runs in progress, and the reuses they planned). An object named by neither is
// deleted only when it was last written before the sweep's start minus a grace period: a run
// that started before the sweep may have stored objects it has not listed in its sums yet
// (a copy task writes its sums when its last file is stored). A pruned backup loses its
// metadata first, so from then on it is neither a mark nor a base for a new run.

// DefaultGrace is prune's --grace: long enough for any copy task to write its sums after it
// stored its first object.
const DefaultGrace = 24 * time.Hour

// MinGraceWithRuns is the shortest grace a sweep keeps while a run is in progress: a run's
// worker takes an object stored less than an hour ago as stored, without writing it again,
// and names it in the run's sums only when its task ends; a shorter grace could delete it
// meanwhile.
const MinGraceWithRuns = time.Hour

// SweepOptions tune SweepObjects.
type SweepOptions struct {
	// Grace keeps unnamed objects last written less than this before the sweep began.
	Grace time.Duration
	// DryRun counts what would be swept and deletes nothing.
	DryRun bool
	// Dropped are backups not to count as marks (those a dry run would have removed).
	Dropped map[string]bool
}

// SweepResult is what a sweep of the object store found and did.
type SweepResult struct {
	Objects    int64 `json:"objects"`     // objects in the store when it was listed
	Live       int64 `json:"live"`        // named by a backup or a run
	Young      int64 `json:"young"`       // named by none, but younger than the grace period
	Swept      int64 `json:"swept"`       // deleted (or, on a dry run, that would be)
	SweptBytes int64 `json:"swept_bytes"` // their size
	DryRun     bool  `json:"dry_run"`
	// Warnings say what the sweep did otherwise than asked (a grace raised for a run).
	Warnings []string `json:"warnings,omitempty"`
}

// objectsPrefix is where the store keeps content by SHA-256.
const objectsPrefix = layout.ObjectsDir + "/sha256/"

// sweepHalt, a test hook, stops the sweep after this many deletions until the process is
// killed (WNB_TEST_SWEEP_HALT=N).
var sweepHalt = os.Getenv("WNB_TEST_SWEEP_HALT")

// removeHalt, a test hook, stops a prune once it removed the metadata of the backup it names
// ("*": any), until the process is killed (WNB_TEST_REMOVE_HALT).
var removeHalt = os.Getenv("WNB_TEST_REMOVE_HALT")

// SweepObjects deletes the objects of the destination's object store that no complete backup
// and no run in progress needs, as the package comment says. A destination without an object
// store is untouched (nil result). Memory stays flat in the number of objects: the marks are
// sorted through an external sort and merge-joined with the store's listing, which S3 gives
// in key order.
func (d *Destination) SweepObjects(ctx context.Context, o SweepOptions) (*SweepResult, error) {
	start := time.Now()
	if n, err := countKeys(ctx, d.bucket, objectsPrefix, 1); err != nil || n == 0 {
		return nil, err
	}
	dir, err := scratch.MkdirTemp("", "wnb-sweep-")
	if err != nil {
		return nil, fmt.Errorf("sweep the object store: %w", err)
	}
	defer os.RemoveAll(dir)
	marks := extsort.New(dir, 8<<20)
	defer marks.Close()
	// Runs first, then backups: a run that publishes in between is then seen at least once
	// (its staging area is removed only after its metadata is written).
	runs, err := d.markRuns(ctx, marks)
	if err != nil {
		return nil, fmt.Errorf("sweep the object store: %w", err)
	}
	if err := d.markBackups(ctx, marks, o.Dropped); err != nil {
		return nil, fmt.Errorf("sweep the object store: %w", err)
	}
	res := &SweepResult{DryRun: o.DryRun}
	if runs > 0 && o.Grace < MinGraceWithRuns {
		res.Warnings = append(res.Warnings, fmt.Sprintf("--grace %s raised to %s for this sweep: %d runs are in progress, and a run takes an object stored less than %s ago as stored before it names it", o.Grace, MinGraceWithRuns, runs, MinGraceWithRuns))
		o.Grace = MinGraceWithRuns
	}
	if err := d.sweep(ctx, marks, start.Add(-o.Grace), res); err != nil {
		return res, fmt.Errorf("sweep the object store: %w", err)
	}
	return res, nil
}

// markRuns marks the sums that every staging area's key lists and sums name, and returns how
// many staging areas (runs in progress, or abandoned) there are.
func (d *Destination) markRuns(ctx context.Context, marks *extsort.Sorter) (int, error) {
	var lists []string
	areas := map[string]bool{}
	err := d.bucket.Walk(ctx, layout.StagingPrefix, func(obj storage.Object) error {
		top, rest, _ := strings.Cut(obj.Key, "/")
		if layout.IsStagingName(top) {
			areas[top] = true
		}
		if layout.IsStagingName(top) && strings.HasSuffix(rest, ".jsonl") &&
			(strings.HasPrefix(rest, ".wnb/keys/") || strings.HasPrefix(rest, ".wnb/sums/")) {
			lists = append(lists, obj.Key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, key := range lists {
		err := d.markList(ctx, key, marks)
		if errors.Is(err, storage.ErrNotExist) {
			continue // the run published and removed its staging area meanwhile: its index is a mark
		}
		if err != nil {
			return 0, fmt.Errorf("run in progress: %w", err)
		}
	}
	return len(areas), nil
}

// markBackups marks the sums that every complete backup's file index names. A complete
// backup in the object store whose index cannot be read stops the sweep: its objects are
// unknown, so none may be deleted.
func (d *Destination) markBackups(ctx context.Context, marks *extsort.Sorter, dropped map[string]bool) error {
	backups, err := d.List(ctx, ListOptions{})
	if err != nil {
		return err
	}
	for _, b := range backups {
		if b.Kind != KindFolder || dropped[b.Name] {
			continue
		}
		// Every folder's metadata is read again, whatever the listing made of it: one that
		// does not read or parse (a 503, a 403, a damaged file) may be a complete backup
		// whose objects are in use, and is not taken for an incomplete one.
		meta, err := d.folderMetadata(ctx, b.Name)
		if errors.Is(err, storage.ErrNotExist) {
			continue // pruned since it was listed, or never published
		} else if err != nil {
			return fmt.Errorf("backup %s: cannot tell which objects it uses (%w); nothing is swept", b.Name, err)
		}
		if meta.Status != layout.StatusComplete || meta.Files.Store != layout.StoreObjects {
			continue
		}
		index := meta.Files.Index
		if index == "" {
			index = layout.FileIndex
		}
		if err := d.markList(ctx, path.Join(b.Name, index), marks); err != nil {
			return fmt.Errorf("backup %s: its file index: %w; nothing is swept", b.Name, err)
		}
	}
	return nil
}

// folderMetadata reads a folder backup's metadata.
func (d *Destination) folderMetadata(ctx context.Context, name string) (*layout.Metadata, error) {
	r, _, err := d.bucket.Open(ctx, path.Join(name, layout.FileMetadata))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := storage.ReadLimited(r, layout.MaxMetadataSize)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", layout.FileMetadata, err)
	}
	return layout.ParseMetadata(data)
}

// markList marks every SHA-256 a list of messages.FileEntry lines names (a file index, key
// list or sums).
func (d *Destination) markList(ctx context.Context, key string, marks *extsort.Sorter) error {
	r, _, err := d.bucket.Open(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	return readFileIndex(r, func(e messages.FileEntry) error {
		if e.SHA256 == "" {
			return nil
		}
		return marks.Add(e.SHA256, nil)
	})
}

// readFileIndex streams a file index (or key list, or sums): one place to swap for the
// layout package's reader.
func readFileIndex(r io.Reader, fn func(messages.FileEntry) error) error {
	return messages.ReadFileList(layout.DecompressIndex(r), fn)
}

// sweep merge-joins the sorted marks with the store's listing and deletes (or counts) what
// is unmarked and older than cutoff.
func (d *Destination) sweep(ctx context.Context, marks *extsort.Sorter, cutoff time.Time, res *SweepResult) error {
	var markErr error
	next, stop := iter.Pull(sortedKeys(marks, &markErr))
	defer stop()
	mark, more := next()
	return d.bucket.Walk(ctx, objectsPrefix, func(obj storage.Object) error {
		sum, ok := objectSum(obj.Key)
		if !ok {
			return nil // not an object this tool stored: never touched
		}
		res.Objects++
		for more && mark < sum {
			mark, more = next()
		}
		if !more && markErr != nil {
			return fmt.Errorf("read the marks back: %w", markErr) // marks cut short: nothing more is unmarked for sure
		}
		switch {
		case more && mark == sum:
			res.Live++
			return nil
		case !obj.LastModified.Before(cutoff):
			res.Young++
			return nil
		}
		if !res.DryRun {
			deleted, err := d.deleteIfOld(ctx, obj.Key, cutoff)
			if err != nil || !deleted {
				res.Young += btoi(!deleted)
				return err
			}
		}
		res.Swept++
		res.SweptBytes += obj.Size
		if sweepHalt != "" && fmt.Sprint(res.Swept) == sweepHalt {
			fmt.Fprintf(os.Stderr, "WNB_TEST_SWEEP_HALT reached %d deletions (pid %d)\n", res.Swept, os.Getpid())
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
}

// deleteIfOld deletes an object unless it was written again since it was listed: a run that
// found the content already stored writes an old object again before it counts on it.
func (d *Destination) deleteIfOld(ctx context.Context, key string, cutoff time.Time) (bool, error) {
	obj, err := d.bucket.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if !obj.LastModified.Before(cutoff) {
		return false, nil
	}
	return true, d.bucket.Remove(ctx, key)
}

// sortedKeys yields the sorter's keys in order, each once; a failure to read them back ends
// the sequence early and is put in *errp.
func sortedKeys(s *extsort.Sorter, errp *error) iter.Seq[string] {
	return func(yield func(string) bool) {
		last, first := "", true
		errStop := errors.New("stop")
		err := s.Each(func(k string, _ []byte) error {
			if !first && k == last {
				return nil
			}
			first, last = false, k
			if !yield(k) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			*errp = err
		}
	}
}

// removeMetadata deletes a folder backup's metadata, before anything else of it: from then
// on it is incomplete, so neither a mark of the object store's sweep nor a base for a new
// run.
func (d *Destination) removeMetadata(ctx context.Context, name string) error {
	if err := d.bucket.Remove(ctx, path.Join(name, layout.FileMetadata)); err != nil {
		return err
	}
	if removeHalt == name || removeHalt == "*" {
		fmt.Fprintf(os.Stderr, "WNB_TEST_REMOVE_HALT reached %s (pid %d)\n", name, os.Getpid())
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// objectSum returns the hex SHA-256 an object key of the store stands for.
func objectSum(key string) (string, bool) {
	sum := path.Base(key)
	if len(sum) != 64 || layout.ObjectKey(sum) != key {
		return "", false
	}
	if _, err := hex.DecodeString(sum); err != nil || strings.ToLower(sum) != sum {
		return "", false
	}
	return sum, true
}

// countKeys counts objects under prefix, stopping at limit.
func countKeys(ctx context.Context, b *storage.Bucket, prefix string, limit int) (int, error) {
	n := 0
	errEnough := errors.New("enough")
	err := b.Walk(ctx, prefix, func(storage.Object) error {
		if n++; n >= limit {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return n, err
}

func btoi(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// sweepAfter sweeps the object store once prune has removed what it does not keep; a dry run
// counts what would be swept had those backups gone.
func (d *Destination) sweepAfter(ctx context.Context, res *PruneResult, o PruneOptions) error {
	so := SweepOptions{Grace: o.Grace, DryRun: o.DryRun}
	if o.DryRun {
		so.Dropped = map[string]bool{}
		for _, dec := range res.Decisions {
			if !dec.Keep {
				so.Dropped[dec.Backup.Name] = true
			}
		}
	}
	sr, err := d.SweepObjects(ctx, so)
	res.Sweep = sr
	return err
}
