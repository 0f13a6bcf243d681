package coordinator

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/webnovel/webnovel-backup/internal/database"
	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/extsort"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/internal/subset"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// checkSelected runs every check of a selective restore before anything changes: metadata,
// the fixtures' checksums, the target's schema, the closure of the selection, its conflicts
// and the files its rows name (checksums of those). An encrypted backup's are decrypted and
// checked against its plaintext manifest too (restore_select_decrypt.go). The result is never nil.
func (c *Coordinator) checkSelected(ctx context.Context, src *restoreSource, o RestoreOptions) (*restoreCheck, *selection, error) {
	chk := &restoreCheck{}
	meta, err := readCompleteMetadata(src.dir)
	if err != nil {
		return chk, nil, err
	}
	chk.plan = &RestorePlan{Metadata: meta, Merge: true}
	// An encrypted backup without a key is refused before anything else is read.
	ids, err := restoreIdentities(src.dir, redact.URL(o.Source), meta, o)
	if err != nil {
		return chk, nil, err
	}
	models, err := backupModels(src.dir, meta)
	if err != nil {
		return chk, nil, err
	}
	if len(models) == 0 {
		return chk, nil, outcome.NewUsage(errNoSelectedFixtures)
	}
	if chk.work, err = newRestoreWork(ctx, o.TempDir); err != nil {
		return chk, nil, err
	}
	sums, err := openSums(src.dir, chk.work.spill())
	if err != nil {
		return chk, nil, err
	}
	defer sums.Close()
	if chk.dec, err = checkSelectedFixtures(ctx, src.dir, meta, sums, models, o, ids, chk.work); err != nil {
		return chk, nil, err
	}
	if chk.db, err = openCheckedTarget(ctx, o, models, chk.plan); err != nil {
		return chk, nil, err
	}
	sel, err := resolveSelection(ctx, chk.db, fixtureDir(src.dir, chk.dec), models, o.Select)
	if err != nil {
		return chk, nil, err
	}
	if err := checkPermissionIDs(ctx, chk.db, meta, sel.permissionIDs(), "or leave out the users whose permissions these are"); err != nil {
		return chk, nil, err
	}
	if err := sel.planModels(ctx, chk.db, chk.plan); err != nil {
		return chk, nil, err
	}
	if !o.SkipFiles {
		if err := chk.planSelectedStorage(ctx, src, sums, sel, o); err != nil {
			return chk, nil, err
		}
	}
	return chk, sel, nil
}

// planSelectedStorage plans the copies of the files the selected rows name, and checks that
// the target storage opens.
func (chk *restoreCheck) planSelectedStorage(ctx context.Context, src *restoreSource, sums *layout.Sums, sel *selection, o RestoreOptions) error {
	b, err := storage.Open(ctx, o.StorageURL)
	if err != nil {
		return err
	}
	defer b.Close()
	chk.plan.Storage = b.String()
	planOwner(o, chk.plan)
	chk.work.live = &liveFiles{b: b, policy: sel.plan.OnConflict, plan: sel.plan, warn: func(w string) { chk.plan.Warnings = append(chk.plan.Warnings, w) }}
	defer func() { chk.work.live = nil }()
	if chk.tasks, err = planSelectedFiles(ctx, src, sums, sel.files(), o, chk.work, chk.plan, chk.dec); err != nil {
		return err
	}
	return checkRestoreSpace(chk.plan, false) // a selective restore stages nothing in the storage
}

// checkSelectedFixtures checks the backup's manifest and the sums of its fixtures; an
// encrypted backup's (ids set) are decrypted into the work folder and checked there, and the
// returned keys and plaintext manifest then read them and check its files.
func checkSelectedFixtures(ctx context.Context, dir string, meta *layout.Metadata, sums *layout.Sums, models []platform.Model, o RestoreOptions,
	ids *encryption.Identities, work *restoreWork) (*restoreDecrypt, error) {
	if err := checkManifest(meta, sums, o.RequireChecksums); err != nil {
		return nil, err
	}
	if ids != nil {
		return decryptSelectedFixtures(ctx, dir, meta, sums, models, o, ids, work)
	}
	if sums == nil {
		return nil, nil
	}
	var names []string
	for _, m := range models {
		names = append(names, m.FixtureName())
	}
	return nil, checkSums(ctx, dir, sums, meta, names, o.HashWorkers)
}

// resolveSelection finds the closure of the selection and the rows it would change.
func resolveSelection(ctx context.Context, db *database.DB, dir string, models []platform.Model, o *SelectOptions) (*selection, error) {
	src := &fixtureSource{dir: dir, models: map[string]bool{}}
	for _, m := range models {
		src.models[m.Label] = true
	}
	seeds, err := o.seeds(ctx, src)
	if err != nil {
		return nil, err
	}
	closure, err := subset.Resolve(ctx, platform.Default, src, db, seeds)
	if err != nil {
		return nil, err
	}
	sel := &selection{closure: closure, src: src, conflicts: map[string]map[int64]bool{}, plan: &SubsetPlan{OnConflict: o.OnConflict}}
	live := map[string]map[int64]bool{}
	for _, r := range closure.Models() {
		if live[r.Model.Label], err = sel.compare(ctx, db, r); err != nil {
			return nil, err
		}
	}
	for _, r := range closure.Models() {
		dropLiveRelinks(r, live)
		sel.plan.Models = append(sel.plan.Models, SubsetModel{
			Label: r.Model.Label, Selected: len(r.Selected), Needed: len(r.Needed), Links: r.LinkCount(),
			Relinks: r.RelinkCount(), Conflicts: len(sel.conflicts[r.Model.Label]),
		})
	}
	sel.plan.FileKeys = len(sel.files())
	return sel, nil
}

// compare finds which selected rows of r the live database holds, and which of those hold
// other values than the backup's (the conflicts).
func (s *selection) compare(ctx context.Context, db *database.DB, r *subset.Rows) (map[int64]bool, error) {
	pks := make([]int64, 0, len(r.Selected))
	for pk := range r.Selected {
		pks = append(pks, pk)
	}
	live, err := db.Existing(ctx, r.Model, pks)
	if err != nil {
		return nil, err
	}
	cs, err := db.Conflicts(ctx, r.Model, s.src.opener(r.Model), live)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if s.conflicts[c.Model] == nil {
			s.conflicts[c.Model] = map[int64]bool{}
		}
		s.conflicts[c.Model][c.PK] = true
	}
	s.plan.Conflicts = append(s.plan.Conflicts, cs...)
	return live, nil
}

// dropLiveRelinks keeps the references to set back only where the selected row they point at
// is missing live: its deletion is what set them to NULL. Where it still exists, a NULL was
// someone's edit, which stays.
func dropLiveRelinks(r *subset.Rows, live map[string]map[int64]bool) {
	for _, f := range r.Model.Fields {
		ls, ok := r.Relinks[f.Name]
		if !ok {
			continue
		}
		kept := ls[:0]
		for _, l := range ls {
			if !live[f.To][l.Target] {
				kept = append(kept, l)
			}
		}
		r.Relinks[f.Name] = kept
	}
}

// planModels fills the restore plan's models: the rows the closure writes of each, and the
// rows the table holds now.
func (s *selection) planModels(ctx context.Context, db *database.DB, plan *RestorePlan) error {
	plan.Subset = s.plan
	var models []platform.Model
	for _, r := range s.closure.Models() {
		models = append(models, r.Model)
	}
	counts, err := db.CountRows(ctx, models)
	if err != nil {
		return err
	}
	for _, r := range s.closure.Models() {
		plan.Models = append(plan.Models, PlanModel{Label: r.Model.Label, File: r.Model.FixtureName(), Rows: int64(r.Count()), Current: counts[r.Model.Label]})
	}
	return nil
}

// planSelectedFiles plans the copy of the files the closure's rows name. A file the backup
// does not hold is a warning naming it (the platform had lost it already); one whose sum
// differs from SHA256SUMS is refused.
func planSelectedFiles(ctx context.Context, src *restoreSource, sums *layout.Sums, keys []string, o RestoreOptions, work *restoreWork, plan *RestorePlan, dec *restoreDecrypt) ([]*messages.Task, error) {
	meta := plan.Metadata
	wanted := map[string]string{} // path in the backup → storage key
	for _, k := range keys {
		if err := storage.CheckKey(k); err != nil {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("file %s named by a restored row is not a valid storage key: not restored (%v)", storage.QuoteKey(k), err))
			continue
		}
		rel := k
		if meta.Files.NameEncoding == layout.NamesEscaped {
			rel = storage.EscapeKey(k)
		}
		wanted[layout.FilesDir+"/"+rel] = k
	}
	if dec != nil {
		return planSelectedEncrypted(ctx, src, sums, wanted, o, work, plan, dec)
	}
	if meta.Files.Store == layout.StoreObjects {
		return planSelectedObjects(ctx, src, wanted, o, work, plan, sums)
	}
	listed := map[string]string{}
	if sums != nil {
		var err error
		if listed, err = listedSums(sums, wanted); err != nil {
			return nil, err
		}
	}
	pl := newRestorePlanner(o, work, src.dir, layout.FilesDir+"/", meta, plan)
	pl.linkFrom(src, nil)
	var rels []string
	for _, rel := range slices.Sorted(maps.Keys(wanted)) {
		fi, err := selectedFolderFile(src.dir, rel, wanted[rel], listed, sums != nil, plan)
		if err != nil {
			return nil, err
		}
		if fi == nil {
			continue
		}
		e := messages.FileEntry{Key: wanted[rel], Size: fi.Size(), SHA256: listed[rel]}
		if rel != layout.FilesDir+"/"+e.Key {
			e.Stored = rel
		}
		if err := pl.add(ctx, e); err != nil {
			return nil, err
		}
		rels = append(rels, rel)
	}
	if sums == nil {
		plan.Warnings = append(plan.Warnings, "backup has no SHA256SUMS (written by the Python command?): its integrity cannot be verified")
	} else if err := hashSelectedFiles(ctx, src.dir, rels, listed, o.HashWorkers); err != nil {
		return nil, err
	}
	if err := pl.flush(ctx); err != nil {
		return nil, err
	}
	return pl.tasks, pl.syncLinked(src.dir)
}

// selectedFolderFile stats the file a selected row names (rel in backup folder dir, restored
// to key): nil, with a warning in the plan, when the backup does not hold it (the platform had
// lost it already); an error when SHA256SUMS (listed) lists it but the folder lacks it, or,
// with requireListed, when SHA256SUMS does not list it.
func selectedFolderFile(dir, rel, key string, listed map[string]string, requireListed bool, plan *RestorePlan) (os.FileInfo, error) {
	fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
	present := err == nil && fi.Mode().IsRegular()
	_, isListed := listed[rel]
	switch {
	case !present && isListed:
		return nil, fmt.Errorf("%s is listed in %s but missing from the backup", storage.QuoteKey(rel), layout.FileSums)
	case !present:
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("file %s named by a restored row is not in the backup: not restored", storage.QuoteKey(key)))
		return nil, nil
	case !isListed && requireListed:
		return nil, fmt.Errorf("%s is not listed in %s: it cannot be verified", storage.QuoteKey(rel), layout.FileSums)
	}
	return fi, nil
}

// hashSelectedFiles checks the files to restore against their SHA256SUMS lines (listed).
func hashSelectedFiles(ctx context.Context, dir string, rels []string, listed map[string]string, workers int) error {
	return layout.HashFiles(ctx, dir, rels, workers, func(rel, got string, _ int64, err error) error {
		switch {
		case err != nil:
			return fmt.Errorf("check %s: %w", rel, err)
		case got != listed[rel]:
			return fmt.Errorf("%s is corrupt: its SHA-256 is %s, %s says %s", rel, got, layout.FileSums, listed[rel])
		}
		return nil
	})
}

// checkedObjectIndex returns the name of an object-store backup's file index, once it is
// checked against SHA256SUMS: a selective restore finds each wanted file's object there.
func checkedObjectIndex(ctx context.Context, src *restoreSource, sums *layout.Sums, meta *layout.Metadata) (string, error) {
	if src.root == "" {
		return "", fmt.Errorf("%s says the files are in the object store of the backup's destination, which is unknown here", layout.FileMetadata)
	}
	if sums == nil {
		return "", fmt.Errorf("%s is missing: the files of this object-store backup cannot be verified", layout.FileSums)
	}
	index := meta.Files.Index
	if index == "" {
		index = layout.FileIndex
	}
	if err := checkSums(ctx, src.dir, sums, meta, []string{index}, 1); err != nil {
		return "", err
	}
	return index, nil
}

// planSelectedObjects plans the selected files of an object-store backup (wanted: path in the
// backup → storage key). Before anything changes each one's object must exist at its size;
// into a local storage, the objects are read into the storage's stage and checked there, as a
// whole restore's are (stageObjects).
func planSelectedObjects(ctx context.Context, src *restoreSource, wanted map[string]string, o RestoreOptions, work *restoreWork, plan *RestorePlan, sums *layout.Sums) ([]*messages.Task, error) {
	meta := plan.Metadata
	index, err := checkedObjectIndex(ctx, src, sums, meta)
	if err != nil {
		return nil, err
	}
	selected := func(fn func(e messages.FileEntry, key string) error) (map[string]bool, error) {
		f, err := storage.OpenRegular(filepath.Join(src.dir, filepath.FromSlash(index)))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		found := map[string]bool{}
		err = messages.ReadFileList(layout.DecompressIndex(f), func(e messages.FileEntry) error {
			key, ok := wanted[e.Path]
			if !ok || found[e.Path] {
				return nil
			}
			found[e.Path] = true
			return fn(e, key)
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", index, err)
		}
		return found, nil
	}
	needed := extsort.New(work.spill(), restoreSortBudget)
	defer needed.Close()
	var bytes int64
	modeOf := meta.Files.RecordedModes()
	found, err := selected(func(e messages.FileEntry, key string) error {
		bytes += e.Size
		mode := e.Mode
		if m, ok := modeOf(layout.FilesDir + "/" + key); ok {
			mode = uint32(m)
		}
		return needed.Add(layout.ObjectKey(e.SHA256)+objectNeeded+e.Path, neededRecord(e.Size, mode, e.ModTime, key))
	})
	if err != nil {
		return nil, err
	}
	for _, rel := range slices.Sorted(maps.Keys(wanted)) {
		if !found[rel] {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("file %s named by a restored row is not in the backup: not restored", storage.QuoteKey(wanted[rel])))
		}
	}
	if !o.DryRun && len(found) > 0 {
		if work.stage, err = newRestoreStage(ctx, o.StorageURL, bytes); err != nil {
			return nil, err
		}
	}
	if err := checkObjects(ctx, src.root, needed, work.stage, o.HashWorkers); err != nil {
		return nil, err
	}
	pl := newRestorePlanner(o, work, src.root, "", meta, plan)
	if work.stage != nil {
		pl.staged = work.stage.dir
	}
	_, err = selected(func(e messages.FileEntry, key string) error {
		return pl.add(ctx, messages.FileEntry{Key: key, Stored: layout.ObjectKey(e.SHA256), Size: e.Size, SHA256: e.SHA256, Mode: e.Mode, ModTime: e.ModTime})
	})
	if err != nil {
		return nil, err
	}
	if err := pl.flush(ctx); err != nil {
		return nil, err
	}
	return pl.tasks, nil
}
