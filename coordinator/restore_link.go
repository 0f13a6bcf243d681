package coordinator

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore from an archive unpacks it into a private folder of its own and checks every file
// there against SHA256SUMS before anything changes. Copying each file from there into a local
// storage would write it a second time; instead the workers hard-link it into place
// (CopyTask.LinkSource), and the folder, removed when the restore ends, leaves the storage
// the only name of each file. A backup folder is never linked from: the platform could then
// change the backup's files in place through the storage.

// linksUnpacked tells whether the restore's workers may link the files of src into the storage
// at storageURL instead of copying them: src is a folder this run unpacked or downloaded
// (never a backup folder), its files are plaintext (an encrypted backup's are decrypted on
// their way, see restoreStage), and the storage is a local folder on src's filesystem, where
// a link can be made (a worker still copies a file it cannot link).
func linksUnpacked(src *restoreSource, storageURL string, dec *restoreDecrypt) bool {
	if !src.private || dec != nil {
		return false
	}
	root := storage.LocalPath(storageURL)
	if strings.Contains(root, "://") {
		return false
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return false
	}
	return sameFilesystem(src.dir, existingAncestor(root))
}

// linkFrom has the planner's tasks link src's files into the storage when they may
// (linksUnpacked), and the free-space check count them as linked.
func (p *restorePlanner) linkFrom(src *restoreSource, dec *restoreDecrypt) {
	p.link = linksUnpacked(src, p.o.StorageURL, dec)
	if p.plan.space != nil {
		p.plan.space.linked = p.link
	}
}

// syncLinked makes the unpacked files of dir durable before any is linked into the storage
// (a copy is on disk before it takes its name there, and so is a link): when the planned tasks
// link, and the restore is not a dry run.
func (p *restorePlanner) syncLinked(dir string) error {
	if !p.link || p.o.DryRun || len(p.tasks) == 0 {
		return nil
	}
	if err := layout.SyncTree(dir); err != nil {
		return fmt.Errorf("sync the unpacked backup %s: %w", dir, err)
	}
	return nil
}
