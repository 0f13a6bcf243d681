package coordinator

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/webnovel/webnovel-backup/internal/outcome"
	"github.com/webnovel/webnovel-backup/storage"
)

// A restore into a local storage that runs out of space midway has already replaced the
// database, and leaves the storage half-written: so the space its files need is measured
// against the storage's file system before anything changes, as a backup's is against its
// destination. A file the storage already holds under the same name is written beside its old
// copy and renamed over it, which gives the old copy's blocks back: each file counts only for
// what it adds, and the largest one once more, for the moment both copies exist. An archive's
// unpacked copy is on disk when the space is measured (its extraction checks its own room,
// internal/archive), and an encrypted backup's files staged in the storage have had their room
// checked by the staging (newRestoreStage): once staged, the copies only link them. So are an
// unpacked archive's files when the workers link them into the storage (linksUnpacked): they
// take no new blocks, and only the folders they go into are counted.

// fsBlock is the allocation unit a file's size is rounded up to: a file of 1 byte takes a
// block of the file system.
const fsBlock = 4096

// SpaceCheck is a restore's free-space check of its local storage folder.
type SpaceCheck struct {
	// Folder is the storage folder; Measured the nearest existing folder at or above it,
	// whose file system was measured.
	Folder   string `json:"folder"`
	Measured string `json:"measured"`
	// Need is the bytes the restore's files add to the file system, margin included.
	Need int64 `json:"needed_bytes"`
	// Free is the bytes the file system has for this user; -1 when it cannot tell (no check).
	Free int64 `json:"free_bytes"`
	// Replaced is the bytes of the storage's files the restore writes over (given back as each
	// is replaced, so not needed twice).
	Replaced int64 `json:"replaced_bytes"`
	// Linked: the files are on the storage's file system already (an unpacked archive) and are
	// linked into place, so Need is only the margin for their folders.
	Linked bool `json:"linked,omitempty"`
}

// Fits reports whether the files fit (or the free space is unknown).
func (s *SpaceCheck) Fits() bool { return s.Free < 0 || s.Need <= s.Free }

// String is the check for people.
func (s *SpaceCheck) String() string {
	if s.Free < 0 {
		return fmt.Sprintf("the files need about %s%s; the free space at %s is unknown", humanBytes(s.Need), s.linkedNote(), s.Measured)
	}
	return fmt.Sprintf("the files need about %s (%d bytes)%s, %s (%d bytes) free at %s", humanBytes(s.Need), s.Need, s.linkedNote(), humanBytes(s.Free), s.Free, s.Measured)
}

func (s *SpaceCheck) linkedNote() string {
	if s.Linked {
		return " for their folders (each is linked from the unpacked archive, already on that file system)"
	}
	return ""
}

// spaceTally adds up, as the planner plans each file, what the files will take in a local
// storage folder.
type spaceTally struct {
	root string // the storage folder, absolute
	// linked: the files are linked into the storage from a folder on its file system.
	linked bool
	// adds is the blocks each file takes beyond those of the file it replaces; replaced the
	// blocks of the files replaced; largest the largest file's blocks.
	adds, replaced, largest int64
}

// newSpaceTally is the tally for the storage at storageURL: nil for S3, which has no file
// system to fill, or a folder whose path cannot be made absolute (the restore fails on it).
func newSpaceTally(storageURL string) *spaceTally {
	root := storage.LocalPath(storageURL)
	if root == "" || strings.Contains(root, "://") {
		return nil
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil
	}
	return &spaceTally{root: abs}
}

// file counts a file of size bytes restored to key: the storage's file of that name, if any,
// is replaced. One lstat per file, beside a check pass that reads each one whole.
func (t *spaceTally) file(key string, size int64) {
	if t == nil {
		return
	}
	n := (size + fsBlock - 1) / fsBlock * fsBlock
	var freed int64
	if fi, err := os.Lstat(filepath.Join(t.root, filepath.FromSlash(key))); err == nil {
		freed = freedBy(fi)
	}
	t.replaced += freed
	t.adds += max(n-freed, 0)
	t.largest = max(t.largest, n)
}

// need is what the files take, with a margin: a sixteenth for the folders and the file
// system's own records, and the largest file, written beside its old copy before the rename
// gives that back (copies in flight at once are of files of every size).
// Linked files take no new blocks: their folders' margin only.
func (t *spaceTally) need() int64 {
	if t.linked {
		return t.adds / 16
	}
	return t.adds + t.adds/16 + t.largest
}

// checkRestoreSpace measures the free space of a local storage's file system against what the
// planned files take (plan.space), records the check in the plan, and refuses the restore when
// they do not fit: nothing has changed yet. staged: the files are staged in the storage
// already (their room was checked then), so nothing is checked.
func checkRestoreSpace(plan *RestorePlan, staged bool) error {
	t := plan.space
	if t == nil || staged || plan.Files == 0 {
		return nil
	}
	at := existingAncestor(t.root)
	plan.Space = &SpaceCheck{Folder: t.root, Measured: at, Need: t.need(), Free: storageFree.free(at), Replaced: t.replaced, Linked: t.linked}
	if plan.Space.Fits() {
		return nil
	}
	return outcome.Errorf(outcome.Refused, "restore refused: the storage folder %s lacks the space for the backup's files: %s (%d files of %d bytes, less the %s of the storage's files they replace, plus a margin); nothing was changed: free space there (`df -h %s`) or restore into another --storage",
		t.root, plan.Space, plan.Files, plan.Bytes, humanBytes(t.replaced), at)
}

// SetStorageFreeHook is for tests only: from now on the restore's space check takes fn(dir) as
// the free bytes of the file system of the storage folder dir (or its nearest existing
// parent). The returned function removes it.
func SetStorageFreeHook(fn func(dir string) int64) (remove func()) { return storageFree.set(fn) }

// humanBytes prints a size in binary units for people ("1.5 MiB").
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
