package verify

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/references"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// CheckReferences is the database ↔ storage cross-check: every file path a backed-up row
// names is among the backup's files. A missing one is a warning (the platform was broken
// when the backup was made), never a problem of the backup.
const CheckReferences = "references"

// maxReferenceWarnings bounds the warnings naming a missing reference one by one.
const maxReferenceWarnings = 20

// checkReferences repeats the backup's cross-check from its fixtures (an encrypted backup's
// plaintext, with --decrypt) and its file index (else its files/ folder).
func (v *verifier) checkReferences(ctx context.Context) error {
	if v.meta == nil {
		v.add(CheckReferences, false, "not checked: no metadata", nil)
		return nil
	}
	if reason := v.referencesUnchecked(); reason != "" {
		v.rep.References = &layout.References{Reason: reason}
		v.add(CheckReferences, true, "not checked: "+reason, nil)
		return nil
	}
	chk := references.NewChecker(v.spill, 8<<20)
	defer chk.Close()
	if err := v.gatherReferences(ctx, chk); err != nil {
		return err
	}
	err := v.backedUpKeys(func(key string) error { return chk.AddFile(key) })
	if err != nil {
		v.add(CheckReferences, true, "not checked: the backup's files cannot be listed", nil)
		v.warn("references: not checked: %v", err)
		return nil
	}
	rep, err := chk.Check(ctx, nil)
	if err != nil {
		return fmt.Errorf("check references: %w", err)
	}
	v.rep.References = rep
	v.rep.Warnings = append(v.rep.Warnings, references.Warnings(rep, maxReferenceWarnings)...)
	v.add(CheckReferences, true, fmt.Sprintf("%d file paths named by rows, %d missing from the backup's files", rep.Refs, rep.Missing), nil)
	return nil
}

// referencesUnchecked says why the backup's references cannot be checked ("": they can).
func (v *verifier) referencesUnchecked() string {
	o := v.meta.BackupOptions
	switch {
	case !o.IncludeFiles:
		return "the backup holds no files (--skip-files) to check the rows' file fields against"
	case o.SkipDB:
		return "the backup holds no rows (--skip-db) whose file fields name files"
	case v.encrypted() && !v.decrypting():
		return "the backup is encrypted (verify --decrypt with its key checks them)"
	case v.decrypting() && v.plainDir == "":
		return "the backup's fixtures could not be decrypted"
	}
	return ""
}

// gatherReferences reads the file paths the rows of every fixture the fixtures check read
// name. A fixture that cannot be read is that check's problem: its rows are left out here.
func (v *verifier) gatherReferences(ctx context.Context, chk *references.Checker) error {
	dir := v.dir
	if v.decrypting() {
		dir = v.plainDir
	}
	for _, e := range v.fixture {
		m, ok := platform.Default.Model(e.label)
		if !ok || len(m.FileFields()) == 0 || !e.readable {
			continue
		}
		f, err := storage.OpenRegular(filepath.Join(dir, strings.TrimSuffix(e.file, encryption.Ext)))
		if err != nil {
			continue
		}
		err = references.Scan(ctx, m, f, false, chk.Add)
		f.Close()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			v.warn("references: %s: %v", e.file, err)
		}
	}
	return nil
}

// backedUpKeys calls fn with the storage key of every file the backup holds: from its file
// index, else from a walk of files/ (names unescaped, .age taken off).
func (v *verifier) backedUpKeys(fn func(key string) error) error {
	if idx := v.meta.Files.Index; idx != "" {
		f, err := storage.OpenRegular(filepath.Join(v.dir, idx))
		if err != nil {
			return fmt.Errorf("%s: %w", idx, pathless(err))
		}
		defer f.Close()
		names := v.meta.Files.NameEncoding
		return layout.ReadFileIndex(f, func(e messages.FileEntry) error { return fn(references.KeyOf(e, names)) })
	}
	root := filepath.Join(v.dir, layout.FilesDir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if v.encrypted() {
			key = strings.TrimSuffix(key, encryption.Ext)
		}
		if v.meta.Files.NameEncoding == layout.NamesEscaped {
			if key, err = storage.UnescapeKey(key); err != nil {
				return nil // not a name this tool wrote: the checksums check names it
			}
		}
		return fn(key)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
