package coordinator

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore of selected rows from an encrypted backup keeps the whole restore's guarantees
// (restore_decrypt.go): its check pass decrypts every fixture into the run's private work
// folder, where the closure is resolved and the rows are loaded from, and every file the
// selected rows name into nothing but its hash, each checked against SHA256SUMS and the
// plaintext manifest before anything changes. Nothing is staged in the storage (the whole
// restore's shortcut for a local one): the selection is small, and no plaintext is written
// outside the work folder; the workers decrypt each file again as they restore it, checking
// its plaintext sum once more.

// decryptSelectedFixtures opens the encrypted backup's plaintext manifest with ids (a wrong key
// is refused here) and decrypts the models' fixtures into the work folder, checked.
func decryptSelectedFixtures(ctx context.Context, dir string, meta *layout.Metadata, sums *layout.Sums, models []platform.Model, o RestoreOptions,
	ids *encryption.Identities, work *restoreWork) (*restoreDecrypt, error) {
	dec, err := openDecrypt(ctx, dir, redact.URL(o.Source), meta, sums, ids, work)
	if err != nil {
		return nil, err
	}
	stored := make([]string, 0, len(models))
	for _, m := range models {
		stored = append(stored, storedFixture(meta, m))
	}
	if err := decryptFixtures(ctx, dir, sums, meta, stored, dec, o.HashWorkers); err != nil {
		return dec, err
	}
	return dec, nil
}

// planSelectedEncrypted is planSelectedFiles for an encrypted backup: wanted maps each file's
// path in the backup, without .age, to its storage key.
func planSelectedEncrypted(ctx context.Context, src *restoreSource, sums *layout.Sums, wanted map[string]string, o RestoreOptions, work *restoreWork,
	plan *RestorePlan, dec *restoreDecrypt) ([]*messages.Task, error) {
	stored := make(map[string]string, len(wanted))
	for rel, key := range wanted {
		stored[rel+encryption.Ext] = key
	}
	plains, err := selectedPlainSums(dec, stored)
	if err != nil {
		return nil, err
	}
	if plan.Metadata.Files.Store == layout.StoreObjects {
		return planSelectedEncryptedObjects(ctx, src, sums, stored, plains, o, work, plan, dec)
	}
	return planSelectedEncryptedFolder(ctx, src.dir, sums, stored, plains, o, work, plan, dec)
}

// selectedPlainSums picks the plaintext manifest's sums of the stored paths wanted.
func selectedPlainSums(dec *restoreDecrypt, wanted map[string]string) (map[string]string, error) {
	return pickSums(dec.eachFile, wanted, layout.PlainSumsDir)
}

// listedSums picks SHA256SUMS's sums of the stored paths wanted.
func listedSums(sums *layout.Sums, wanted map[string]string) (map[string]string, error) {
	return pickSums(sums.Each, wanted, layout.FileSums)
}

// pickSums picks, from the (path, sum) pairs each passes, the sums of the paths wanted; what
// names the manifest in an error.
func pickSums(each func(func(p, sum string) error) error, wanted map[string]string, what string) (map[string]string, error) {
	picked := map[string]string{}
	err := each(func(p, sum string) error {
		if _, ok := wanted[p]; ok {
			picked[p] = sum
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return picked, nil
}

// planSelectedEncryptedFolder plans the wanted files of an encrypted backup folder (stored
// path → key) and decrypts each, checking its stored bytes against SHA256SUMS and its
// plaintext against the manifest (plains). A file the backup lacks is a warning, as in a
// plain backup; one SHA256SUMS lists but the folder lacks, or does not list, is refused.
func planSelectedEncryptedFolder(ctx context.Context, dir string, sums *layout.Sums, wanted, plains map[string]string, o RestoreOptions, work *restoreWork,
	plan *RestorePlan, dec *restoreDecrypt) ([]*messages.Task, error) {
	listed, err := listedSums(sums, wanted)
	if err != nil {
		return nil, err
	}
	pl := newRestorePlanner(o, work, dir, layout.FilesDir+"/", plan.Metadata, plan)
	var rels []string
	for _, rel := range slices.Sorted(maps.Keys(wanted)) {
		fi, err := selectedFolderFile(dir, rel, wanted[rel], listed, true, plan)
		if err != nil {
			return nil, err
		}
		if fi == nil {
			continue
		}
		if err := pl.add(ctx, messages.FileEntry{Key: wanted[rel], Size: fi.Size(), SHA256: plains[rel], Stored: rel}); err != nil {
			return nil, err
		}
		rels = append(rels, rel)
	}
	if err := decryptSelectedFiles(ctx, dir, rels, listed, plains, dec, o.HashWorkers); err != nil {
		return nil, err
	}
	if err := pl.flush(ctx); err != nil {
		return nil, err
	}
	return pl.tasks, nil
}

// decryptSelectedFiles decrypts the stored files rels of the backup folder dir into their
// hashes only, checking each against SHA256SUMS (listed) and the plaintext manifest (plains).
func decryptSelectedFiles(ctx context.Context, dir string, rels []string, listed, plains map[string]string, dec *restoreDecrypt, workers int) error {
	found := newAgeResults()
	hash := func(ctx context.Context, rel string) (string, int64, error) {
		return found.hashFile(ctx, filepath.Join(dir, filepath.FromSlash(rel)), rel, dec.ids, nil)
	}
	feed := func(send func(string, sumPair) error) error {
		for _, rel := range rels {
			if err := send(rel, sumPair{listed[rel], plains[rel]}); err != nil {
				return err
			}
		}
		return nil
	}
	return layout.HashEachWith(ctx, hash, min(workers, max(1, len(rels))), feed, func(rel string, w sumPair, _ string, _ int64, err error) error {
		return found.check(rel, w.stored, w.plain, err)
	})
}

// planSelectedEncryptedObjects plans the wanted files of an encrypted object-store backup from
// its file index (checked against SHA256SUMS first), then reads, decrypts and checks each
// one's object (checkEncryptedObjects) before anything changes.
func planSelectedEncryptedObjects(ctx context.Context, src *restoreSource, sums *layout.Sums, wanted, plains map[string]string, o RestoreOptions,
	work *restoreWork, plan *RestorePlan, dec *restoreDecrypt) ([]*messages.Task, error) {
	meta := plan.Metadata
	index, err := checkedObjectIndex(ctx, src, sums, meta)
	if err != nil {
		return nil, err
	}
	listed, err := listedSums(sums, wanted)
	if err != nil {
		return nil, err
	}
	needed := extsort.New(work.spill(), restoreSortBudget)
	defer needed.Close()
	pl := newRestorePlanner(o, work, src.root, "", meta, plan)
	found := map[string]bool{}
	err = eachIndexEntry(filepath.Join(src.dir, filepath.FromSlash(index)), index)(func(rel string, e messages.FileEntry) error {
		key, ok := wanted[rel]
		if !ok {
			return nil
		}
		found[rel] = true
		return planSelectedObject(ctx, pl, needed, rel, key, index, e, listed, plains)
	})
	if err != nil {
		return nil, err
	}
	for _, rel := range slices.Sorted(maps.Keys(wanted)) {
		if !found[rel] {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("file %s named by a restored row is not in the backup: not restored", storage.QuoteKey(wanted[rel])))
		}
	}
	if len(found) > 0 {
		if err := checkEncryptedObjects(ctx, src.root, needed, dec, meta.Files.NameEncoding, o.HashWorkers); err != nil {
			return nil, err
		}
	}
	if err := pl.flush(ctx); err != nil {
		return nil, err
	}
	return pl.tasks, nil
}

// planSelectedObject plans one wanted file of the index (stored path rel, restored to key) and
// adds the object it needs to needed, in the record checkEncryptedObjects reads.
func planSelectedObject(ctx context.Context, pl *restorePlanner, needed *extsort.Sorter, rel, key, index string, e messages.FileEntry, listed, plains map[string]string) error {
	q := storage.QuoteKey(rel)
	sum, ok := listed[rel]
	switch {
	case !ok:
		return fmt.Errorf("%s is in %s but not listed in %s: it cannot be verified", q, index, layout.FileSums)
	case sum != e.SHA256:
		return fmt.Errorf("%s: %s has sha256 %s, %s says %s", q, index, e.SHA256, layout.FileSums, sum)
	}
	obj := layout.ObjectKey(sum)
	mode := e.Mode
	if m, ok := pl.modeOf(layout.FilesDir + "/" + key); ok {
		mode = uint32(m)
	}
	if err := needed.Add(obj+objectNeeded+rel, neededRecord(e.Size, mode, e.ModTime, plains[rel])); err != nil {
		return err
	}
	return pl.add(ctx, messages.FileEntry{Key: key, Stored: obj, Size: e.Size, SHA256: plains[rel], Mode: e.Mode, ModTime: e.ModTime})
}
