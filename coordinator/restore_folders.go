package coordinator

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// A backup records the local storage's empty folders and the folders with permissions of
// their own (layout.FolderSummary): its files bring back neither. A whole restore into a
// local storage makes the empty folders, and gives the recorded folders their permissions,
// once every file is in place: a folder its files are written into is made private (or
// read-only) last. A restore of selected rows (--book, --select) writes only their files and
// leaves the folders as they are; an S3 storage has no folders, so each is a warning.

// planFolders notes in the plan the folders a whole restore brings back.
func planFolders(o RestoreOptions, plan *RestorePlan) {
	f := plan.Metadata.Files.Folders
	if o.SkipFiles || f.Len() == 0 {
		return
	}
	if storage.IsS3(o.StorageURL) {
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("the backup records %d folders of its storage (empty, or with permissions of their own), which an S3 storage cannot hold: none is made", f.Len()))
		return
	}
	plan.Folders = f.Len()
}

// planOwner notes in the plan who the files and folders the restore makes in a local storage
// are given (storage.OwnerOf): the workers and restoreFolders give them.
func planOwner(o RestoreOptions, plan *RestorePlan) {
	if o.SkipFiles || storage.IsS3(o.StorageURL) {
		return
	}
	// A storage folder still to be made is given the owner of the folder it is made in.
	root, _, err := openNearestFolder(storage.LocalPath(o.StorageURL))
	if err != nil {
		return
	}
	defer root.Close()
	if owner := storage.OwnerOf(root); owner != nil {
		plan.Owner = fmt.Sprintf("%d:%d", owner.UID, owner.GID)
	}
}

// openFolders lets the workers write into the recorded folders the storage already has with
// permissions that keep their owner out (a read-only 0555 folder an earlier restore made, as
// the backup recorded it): each gets its owner's write and search permission while the files
// are written, and restoreFolders gives the recorded permissions back after them.
func openFolders(o RestoreOptions, plan *RestorePlan) error {
	if plan.Folders == 0 {
		return nil
	}
	root, err := os.OpenRoot(storage.LocalPath(o.StorageURL))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new storage: no folder to open
	} else if err != nil {
		return err
	}
	defer root.Close()
	return plan.Metadata.Files.Folders.Each(func(string) error { return nil }, func(key string, mode fs.FileMode) error {
		name := strings.TrimSuffix(key, "/")
		fi, err := root.Lstat(name)
		if mode&0o300 == 0o300 || err != nil || !fi.IsDir() || fi.Mode().Perm()&0o300 == 0o300 {
			return nil
		}
		if err := root.Chmod(name, fi.Mode().Perm()|0o300); err != nil {
			return fmt.Errorf("let the restore write into folder %s: %w", storage.QuoteKey(key), err)
		}
		return nil
	})
}

// restoreFolders makes the recorded empty folders in the local storage and gives the recorded
// folders their permissions (plan.Folders of them).
func restoreFolders(o RestoreOptions, plan *RestorePlan) error {
	if plan.Folders == 0 {
		return nil
	}
	dir := storage.LocalPath(o.StorageURL)
	if err := ensureLocalRoot(dir); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	made := fs.FileMode(0o755) // a restore's folders take the storage folder's permissions
	if fi, err := root.Stat("."); err == nil {
		made = fi.Mode().Perm()
	}
	owner := storage.OwnerOf(root) // and its owner, as the workers' files do
	return plan.Metadata.Files.Folders.Each(func(key string) error {
		if err := owner.MkdirAll(root, key, made); err != nil {
			return fmt.Errorf("make empty folder %s: %w", storage.QuoteKey(key), err)
		}
		return nil
	}, func(key string, mode fs.FileMode) error {
		name := strings.TrimSuffix(key, "/")
		err := owner.MkdirAll(root, name, made) // in place already, unless its files were not restored
		if err == nil {
			err = root.Chmod(name, mode)
		}
		if err != nil {
			return fmt.Errorf("give folder %s its permissions %s: %w", storage.QuoteKey(key), layout.FormatMode(mode), err)
		}
		return nil
	})
}
