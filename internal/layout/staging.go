package layout

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/webnovel/webnovel-backup/storage"
)

// StagingPrefix starts the name of a staging folder. The name is hidden and
// does not look like a backup, so listing or rotating backups
// ("find -name 'backup_*'") never sees a run in progress or an abandoned one.
const StagingPrefix = ".wnb-staging-"

// maxSeq bounds the collision suffixes tried when publishing: thousands of
// backups started in the same second mean something else is wrong.
const maxSeq = 10000

// A backup holds password hashes and e-mail addresses: whatever the umask, its folders, files
// and archives are the owner's alone. The platform files' own permissions are recorded in
// the metadata (FilesSummary.Modes) and given back on restore.
const (
	DirMode    fs.FileMode = 0o700 // folders: the backup folder, its staging folder, files/…
	FileMode   fs.FileMode = 0o600 // every file, the archive itself included
	ScriptMode fs.FileMode = 0o700 // restore.sh
)

// Staging is the private folder a backup is written into before it is
// published under its backup name.
type Staging struct {
	backupDir string
	runID     string
	path      string
	done      bool // published or aborted
	beat      *heartbeat
}

// StagingPath returns the staging folder of run runID in backupDir, for
// processes that write into a staging folder another one created.
func StagingPath(backupDir, runID string) string {
	return filepath.Join(backupDir, StagingPrefix+runID)
}

// NewStaging creates backupDir (if needed) and the staging folder
// <backupDir>/.wnb-staging-<runID>/. An existing staging folder of the same
// run is reused, so a restarted coordinator can finish its run; tasks write
// deterministic names, so what is already there is overwritten, not mixed.
func NewStaging(backupDir, runID string) (*Staging, error) {
	if err := checkRunID(runID); err != nil {
		return nil, fmt.Errorf("create staging: %w", err)
	}
	if err := os.MkdirAll(backupDir, DirMode); err != nil {
		return nil, fmt.Errorf("create staging: %w", err)
	}
	p := StagingPath(backupDir, runID)
	if err := os.Mkdir(p, DirMode); err != nil {
		fi, serr := os.Stat(p)
		if !errors.Is(err, fs.ErrExist) || serr != nil || !fi.IsDir() {
			return nil, fmt.Errorf("create staging: %w", err)
		}
	}
	// The owner record tells a run in progress from a killed one's leftovers (list, prune).
	beat, err := startHeartbeat(p)
	if err != nil {
		return nil, fmt.Errorf("create staging: %w", err)
	}
	return &Staging{backupDir: backupDir, runID: runID, path: p, beat: beat}, nil
}

func checkRunID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("run id %q: want 1 to 128 characters", id)
	}
	if strings.HasPrefix(id, ".") {
		return fmt.Errorf("run id %q: must not start with '.'", id)
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			return fmt.Errorf("run id %q: only letters, digits, '.', '_' and '-' are allowed", id)
		}
	}
	return nil
}

// Path returns the staging folder.
func (s *Staging) Path() string { return s.path }

// Abort removes the staging folder and everything in it. It does nothing
// after a successful publish, so `defer s.Abort()` is the usual pattern.
//
// A worker may still be finishing a task of the aborted run. The folder is
// first renamed away, so nothing can recreate it under its name (writers hold
// the folder open, see storage's local driver, and their writes land in the
// renamed folder, where they fail once it is deleted); removal is retried
// while such late writes settle.
func (s *Staging) Abort() error {
	if s.done {
		return nil
	}
	defer s.beat.Stop(s.path)
	trash := filepath.Join(filepath.Dir(s.path), ".wnb-trash-"+filepath.Base(s.path)[len(StagingPrefix):])
	target := s.path
	if err := os.Rename(s.path, trash); err == nil {
		target = trash
	} else if errors.Is(err, fs.ErrNotExist) {
		s.done = true
		return nil
	}
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = os.RemoveAll(target); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("abort staging %s: %w", s.path, err)
	}
	s.done = true
	return nil
}

// PublishDir syncs the staging folder to disk and renames it to
// <backupDir>/backup_YYYYMMDD_HHMMSS (the time t, see Name), returning that
// path. The staging folder must hold backup_metadata.json: an incomplete
// backup is never published.
//
// An existing backup is never replaced. The final name is claimed with
// mkdir(2), which fails with EEXIST if the name is taken, and the claim is
// then replaced atomically by rename(2), which on POSIX replaces an empty
// folder. When the name is taken (two runs in the same second, or a
// .tar.gz of that name) the suffixes -2, -3, ... are tried. A crash between
// the claim and the rename leaves an empty folder, incomplete by definition
// (no metadata) and never a damaged backup.
func (s *Staging) PublishDir(t time.Time) (finalPath string, err error) {
	if s.done {
		return "", fmt.Errorf("publish %s: staging already published or aborted", s.path)
	}
	if _, err := os.Stat(filepath.Join(s.path, FileMetadata)); err != nil {
		return "", fmt.Errorf("publish %s: refusing an incomplete backup: %w", s.path, err)
	}
	if err := SyncTree(s.path); err != nil {
		return "", fmt.Errorf("publish %s: %w", s.path, err)
	}
	for seq := s.firstSeq(t); seq <= maxSeq; seq++ {
		final := filepath.Join(s.backupDir, nameWithSeq(t, seq))
		if archiveExists(final) {
			continue
		}
		if err := os.Mkdir(final, DirMode); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return "", fmt.Errorf("publish %s: claim %s: %w", s.path, final, err)
		}
		// syscall.Rename, not os.Rename: os.Rename refuses any existing
		// folder as the target, while rename(2) replaces an empty one.
		if err := syscall.Rename(s.path, final); err != nil {
			os.Remove(final) // release the empty claim
			return "", fmt.Errorf("publish %s: rename to %s: %w", s.path, final, err)
		}
		s.done = true
		s.beat.Stop(s.path)
		if err := syncDir(s.backupDir); err != nil {
			return final, fmt.Errorf("publish %s: %w", final, err)
		}
		return final, nil
	}
	return "", fmt.Errorf("publish %s: names %s to -%d are all taken", s.path, Name(t), maxSeq)
}

// PublishDirNamed is PublishDir under exactly name (a copy keeps its backup's name): it
// fails, publishing nothing, when name is taken by a folder or an archive.
func (s *Staging) PublishDirNamed(name string) (finalPath string, err error) {
	if s.done {
		return "", fmt.Errorf("publish %s: staging already published or aborted", s.path)
	}
	if !IsBackupName(name) {
		return "", fmt.Errorf("publish %s: %q is not a backup name", s.path, name)
	}
	if _, err := os.Stat(filepath.Join(s.path, FileMetadata)); err != nil {
		return "", fmt.Errorf("publish %s: refusing an incomplete backup: %w", s.path, err)
	}
	if err := SyncTree(s.path); err != nil {
		return "", fmt.Errorf("publish %s: %w", s.path, err)
	}
	final := filepath.Join(s.backupDir, name)
	if exists(final + ArchiveExt) {
		return "", fmt.Errorf("publish %s: %s%s exists", s.path, final, ArchiveExt)
	}
	if err := os.Mkdir(final, DirMode); err != nil {
		return "", fmt.Errorf("publish %s: claim %s: %w", s.path, final, err)
	}
	if err := syscall.Rename(s.path, final); err != nil {
		os.Remove(final)
		return "", fmt.Errorf("publish %s: rename to %s: %w", s.path, final, err)
	}
	s.done = true
	s.beat.Stop(s.path)
	if err := syncDir(s.backupDir); err != nil {
		return final, fmt.Errorf("publish %s: %w", final, err)
	}
	return final, nil
}

// PublishArchive publishes the backup as <backupDir>/backup_YYYYMMDD_HHMMSS.tar.gz.
// write is called with a hidden temporary file in backupDir and the name of
// the archive's top folder (the backup name, without .tar.gz); it typically
// archives s.Path(). The file is synced, then hard-linked to its final name
// with link(2), which fails if the name exists, so no backup is ever
// replaced; the temporary file and the staging folder are then removed.
//
// When the name is taken (by a folder or an archive) the suffixes -2, -3,
// ... are used, the top folder following the file name. If another run
// takes the chosen name while the archive is being written, write is
// called again with the next name, so it must be repeatable.
func (s *Staging) PublishArchive(t time.Time, write func(w io.Writer, top string) error) (finalPath string, err error) {
	if s.done {
		return "", fmt.Errorf("publish %s: staging already published or aborted", s.path)
	}
	f, err := os.CreateTemp(s.backupDir, ".wnb-archive-"+s.runID+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", s.path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	defer f.Close()
	seq := s.firstSeq(t)
	for ; seq <= maxSeq; seq++ {
		top := nameWithSeq(t, seq)
		final := filepath.Join(s.backupDir, top+ArchiveExt)
		if archiveExists(filepath.Join(s.backupDir, top)) || exists(filepath.Join(s.backupDir, top)) {
			continue
		}
		if err := rewind(f); err != nil {
			return "", fmt.Errorf("publish %s: %w", final, err)
		}
		if err := write(f, top); err != nil {
			return "", fmt.Errorf("publish %s: %w", final, err)
		}
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("publish %s: %w", final, err)
		}
		if err := os.Link(tmp, final); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue // taken while we wrote: write again under the next name
			}
			return "", fmt.Errorf("publish %s: %w", final, err)
		}
		err := s.linked(final, tmp)
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("publish %s: %w", final, cerr)
		}
		return final, err
	}
	return "", fmt.Errorf("publish %s: names %s to -%d are all taken", s.path, Name(t), maxSeq)
}

// WriteMetadata writes dir/backup_metadata.json, synced to disk. Call it
// last: its presence marks the backup complete.
func WriteMetadata(dir string, m *Metadata) error {
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, FileMetadata), data, FileMode)
}

// ReadMetadata reads and parses dir/backup_metadata.json.
func ReadMetadata(dir string) (*Metadata, error) {
	name := filepath.Join(dir, FileMetadata)
	data, err := storage.ReadRegular(name, MaxMetadataSize)
	if err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	m, err := ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}

// WriteRestoreScript writes dir/restore.sh (mode 0755, synced) for m and
// returns its hex sha256, for SHA256SUMS.
func WriteRestoreScript(dir string, m *Metadata) (sum string, err error) {
	data := RestoreScript(m)
	if err := writeFileSync(filepath.Join(dir, FileRestore), data, ScriptMode); err != nil {
		return "", err
	}
	return sha256Hex(data), nil
}

func rewind(f *os.File) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return f.Truncate(0)
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}

func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	return syncPath(dir)
}

// IsStagingName reports whether name (a base name) is a staging folder's,
// left behind by a run that was killed: such folders are safe to remove
// once that run is known to be dead.
func IsStagingName(name string) bool { return strings.HasPrefix(name, StagingPrefix) }

// PublishFile publishes the backup as the file <backupDir>/<name> (an archive whose name was
// chosen before it was written, since its entries carry it). write is called with a hidden
// temporary file in backupDir (.wnb-archive-<run>-*.tmp); the file is synced, then
// hard-linked to its name with link(2), which fails if the name exists (the error wraps
// fs.ErrExist: no backup is ever replaced); the temporary file and the staging folder are
// then removed.
func (s *Staging) PublishFile(name string, write func(f *os.File) error) (finalPath string, err error) {
	if s.done {
		return "", fmt.Errorf("publish %s: staging already published or aborted", s.path)
	}
	final := filepath.Join(s.backupDir, name)
	f, err := os.CreateTemp(s.backupDir, ".wnb-archive-"+s.runID+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	defer f.Close()
	if err := write(f); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	if err := os.Link(tmp, final); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	return final, s.linked(final, tmp)
}

// PublishBuilt publishes the backup as the file <backupDir>/<name> from file, an archive
// already written in the staging folder (or beside it, on the same file system): the file is
// synced, hard-linked to its name (which fails, wrapping fs.ErrExist, if the name exists),
// and the staging folder removed with it.
func (s *Staging) PublishBuilt(name, file string) (finalPath string, err error) {
	if s.done {
		return "", fmt.Errorf("publish %s: staging already published or aborted", s.path)
	}
	final := filepath.Join(s.backupDir, name)
	if err := syncPath(file); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	if err := os.Link(file, final); err != nil {
		return "", fmt.Errorf("publish %s: %w", final, err)
	}
	return final, s.linked(final, file)
}

// linked finishes the publication of a file that has just been hard-linked from tmp to final:
// the staging is done, the temporary name and the staging folder go, and the backup folder's
// entry is made durable.
func (s *Staging) linked(final, tmp string) error {
	s.done = true
	s.beat.Stop(s.path)
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("publish %s: remove temporary file: %w", final, err)
	}
	if err := syncDir(s.backupDir); err != nil {
		return fmt.Errorf("publish %s: %w", final, err)
	}
	if err := os.RemoveAll(s.path); err != nil {
		return fmt.Errorf("publish %s: remove staging: %w", final, err)
	}
	return nil
}

// firstSeq is the first collision suffix to try for a backup named for t (NextSeq of the
// backup folder's entries; 1 if they cannot be read: the claim still never replaces a name).
func (s *Staging) firstSeq(t time.Time) int {
	ents, err := os.ReadDir(s.backupDir)
	if err != nil {
		return 1
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return NextSeq(names, t)
}

// archiveExists reports whether an archive of the backup named by path (without extension)
// exists, of any compression.
func archiveExists(path string) bool {
	for _, ext := range ArchiveExts {
		if exists(path + ext) {
			return true
		}
	}
	return false
}
