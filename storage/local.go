package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// local keeps objects as files under a root folder, with their permissions and times.
//
// Every access goes through an os.Root opened once per bucket: keys cannot escape the folder
// (not even through symlinks planted inside it), and a bucket keeps writing into the folder it
// opened even if that folder is renamed away — so an aborted run's staging folder, once
// renamed, can never be recreated under its name by a late worker.
//
// The folders that files are read from and written to are kept open as roots of their own
// (a few at a time, see dirCache), so that creating and renaming a file are each one system
// call on a single name instead of a walk down the key's path.
//
// A file is written under a temporary name, synced and renamed into place; in a staging area
// (DeferSync) the sync is left to sync, which makes all the files durable at once. The
// rename stays: two writers of the same file (a task redone while its first run goes on)
// each put a whole version in place, where writing in place could mix or cut them.
type local struct {
	dir string

	once sync.Once
	root *os.Root
	err  error

	// deferSync: commits do not wait for the disk; sync makes them durable at once.
	deferSync bool
	// dirty: something was committed since the last sync began.
	dirty atomic.Bool
	// syncFile is the root folder, opened with it when deferSync, for syncfs.
	syncFile *os.File

	dirs dirCache
	// dirMode is what folders are made with: the root folder's own permissions (owner's
	// access always), so a backup's private folder (0700) stays private all the way down
	// while a media folder's are as open as it.
	dirMode fs.FileMode
	// giveToOwner: what the bucket makes is given to owner, its root folder's owner when this
	// process runs as root (GiveToFolderOwner); owner is nil otherwise.
	giveToOwner bool
	owner       *Owner
}

// TempPrefix starts the names this tool gives files it is writing: TempPrefix and 16 hex
// digits (newTempName), or 32 (a restore's staged copy, messages.StagedName). A writer killed
// mid-write leaves such a file behind.
const TempPrefix = ".wnb-tmp-"

// IsTempName reports whether name, a file's last element, is a temporary name this tool
// gives: TempPrefix and then 16 or 32 lowercase hex digits, nothing else. Only such a file is
// left out of a listing (WalkSpecial reports it) and removed by a sweep: a platform's file
// that merely begins with TempPrefix is data like any other.
func IsTempName(name string) bool {
	rest, ok := strings.CutPrefix(name, TempPrefix)
	if !ok || (len(rest) != 16 && len(rest) != 32) {
		return false
	}
	for i := range len(rest) {
		if c := rest[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newTempName returns a fresh temporary name (IsTempName).
func newTempName() string {
	var b [8]byte
	rand.Read(b[:])
	return TempPrefix + hex.EncodeToString(b[:])
}

func newLocal(dir string, o openOptions) *local {
	// Without a way to sync a whole filesystem, each commit syncs its own file.
	return &local{dir: filepath.Clean(dir), deferSync: o.deferSync && canSyncFS, giveToOwner: o.giveToOwner}
}

func (l *local) describe() string { return l.dir }
func (l *local) backend() string  { return "FileSystemStorage" }

func (l *local) open_() (*os.Root, error) {
	l.once.Do(func() {
		l.root, l.err = os.OpenRoot(l.dir)
		l.dirMode = 0o755
		if l.err == nil {
			if fi, err := l.root.Stat("."); err == nil {
				l.dirMode = fi.Mode().Perm() | 0o700
				if l.giveToOwner {
					l.owner = ownerOfFolder(fi)
					l.dirs.owner = l.owner
				}
			}
		}
		if l.err == nil && l.deferSync {
			// Opened before anything is written: syncfs reports the filesystem's write-back
			// errors that happened since its descriptor was opened, and no earlier.
			if l.syncFile, l.err = l.root.Open("."); l.err != nil {
				l.root.Close()
			}
		}
	})
	return l.root, l.err
}

func (l *local) close() error {
	l.dirs.closeAll()
	if top := l.dirs.top; top != nil && top.handle != nil {
		top.handle.Close()
	}
	if l.syncFile != nil {
		l.syncFile.Close()
	}
	if l.root != nil {
		return l.root.Close()
	}
	return nil
}

func objectOf(key string, fi fs.FileInfo) Object {
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), Mode: fi.Mode().Perm(), LastModified: fi.ModTime(),
		Unkept: fi.Mode() & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
}

// walk lists regular files in byte order of their keys; symlinks are not
// followed (a link in MEDIA_ROOT could point anywhere on the host).
func (l *local) walk(ctx context.Context, prefix string, fn func(Object) error) error {
	return l.walkSpecial(ctx, prefix, fn, nil)
}

// walkSpecial is walk that also calls special (when not nil) for every entry that is neither
// a regular file nor a folder.
func (l *local) walkSpecial(ctx context.Context, prefix string, fn func(Object) error, special func(Special) error) error {
	root, err := l.open_()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // an empty storage
	} else if err != nil {
		return err
	}
	start := "."
	if prefix != "" {
		// A prefix names a folder ("content/") or a key beginning; walk the deepest folder it names.
		dir := prefix
		if !strings.HasSuffix(dir, "/") {
			dir = path.Dir(prefix)
		}
		start = strings.TrimSuffix(dir, "/")
		if start == "" {
			start = "."
		}
	}
	if _, err := root.Stat(start); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var folder func(key string, empty bool) error
	if special != nil {
		folder = l.folderNotes(root, prefix, special)
	}
	return l.walkFolder(ctx, root, start, func(key string, d fs.DirEntry) error {
		if !strings.HasPrefix(key, prefix) {
			return nil // not asked for
		}
		if IsTempName(d.Name()) {
			return reportTemp(key, special) // not committed yet
		}
		if !d.Type().IsRegular() {
			return l.reportSpecial(root, key, d.Type(), special)
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // vanished while listing
		} else if err != nil {
			return err
		}
		return fn(objectOf(key, fi))
	}, folder)
}

// Kinds of Special a folder is reported as: the files a backup holds do not bring back an
// empty folder, nor a folder's permissions (a restore makes folders with its storage folder's
// own), so the backup records them apart (layout.FolderSummary).
const (
	KindEmptyFolder       = "empty folder"
	KindFolderPermissions = "folder permissions"
)

// folderNotes returns what walkSpecial tells special of each folder under prefix: that it is
// empty, or that its permissions differ from the storage folder's (a private folder a restore
// would make readable), with its mode.
func (l *local) folderNotes(root *os.Root, prefix string, special func(Special) error) func(key string, empty bool) error {
	rootMode := fs.FileMode(0o755)
	if fi, err := root.Stat("."); err == nil {
		rootMode = fi.Mode().Perm()
	}
	return func(key string, empty bool) error {
		if !strings.HasPrefix(key+"/", prefix) {
			return nil // not asked for, or above the prefix
		}
		fi, err := root.Lstat(key)
		own := err == nil && fi.Mode().Perm() != rootMode
		sp := Special{Key: key + "/", Kind: KindEmptyFolder, Why: "it holds no file", OwnMode: own}
		if err == nil {
			sp.Mode = fi.Mode().Perm()
		}
		switch {
		case empty:
			return special(sp)
		case !own:
			return nil
		}
		sp.Kind = KindFolderPermissions
		sp.Why = fmt.Sprintf("the folder's mode is %04o: a restore makes its folders with the storage folder's mode (%04o here)", sp.Mode, rootMode)
		return special(sp)
	}
}

// walkFolder calls visit for every entry under dir but folders, depth first, in byte order of
// their keys (see compareWalked). It reads folders through the root itself, not through
// io/fs, which refuses names that are not UTF-8: a local name is any bytes.
func (l *local) walkFolder(ctx context.Context, root *os.Root, dir string, visit func(key string, d fs.DirEntry) error, folder func(key string, empty bool) error) error {
	f, err := root.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	if folder != nil && dir != "." {
		if err := folder(dir, len(entries) == 0); err != nil {
			return err
		}
	}
	slices.SortFunc(entries, compareWalked)
	for _, d := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := d.Name()
		if dir != "." {
			key = dir + "/" + key
		}
		if !d.IsDir() {
			err = visit(key, d)
		} else if err = l.walkFolder(ctx, root, key, visit, folder); errors.Is(err, fs.ErrNotExist) {
			err = nil // removed while listing
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// compareWalked orders a folder's entries so that a depth-first walk visits keys in byte
// order: a folder sorts as its name and a slash, which is where its keys fall ("a.txt" <
// "a/b" because '.' < '/'). A listing in key order is what the backup's manifest and index
// are sorted by, so the planner joins it with a base as it comes, with no sort.
func compareWalked(a, b fs.DirEntry) int {
	an, bn := a.Name(), b.Name()
	n := min(len(an), len(bn))
	if c := strings.Compare(an[:n], bn[:n]); c != 0 {
		return c
	}
	// One name is the other's start: what follows it in the shorter entry's key is "/" for a
	// folder and nothing for a file.
	return cmpTail(an[n:], a.IsDir()) - cmpTail(bn[n:], b.IsDir())
}

// cmpTail ranks what follows a common start in a walked key: nothing (a file's key ends
// there: 0), else the key's next byte plus 2, which for a folder is its slash.
func cmpTail(rest string, dir bool) int {
	switch {
	case rest != "":
		return int(rest[0]) + 2
	case dir:
		return int('/') + 2
	default:
		return 0
	}
}

// reportSpecial tells special about an entry that is not a regular file.
func (l *local) reportSpecial(root *os.Root, key string, mode fs.FileMode, special func(Special) error) error {
	if special == nil {
		return nil
	}
	s := Special{Key: key, Kind: KindOf(mode)}
	if s.Kind == "symlink" {
		// Read, never followed: a link is only described.
		if t, err := root.Readlink(key); err == nil {
			s.Target = t
		}
	}
	return special(s)
}

// reportTemp tells special (when not nil) about a file under a temporary name.
func reportTemp(key string, special func(Special) error) error {
	if special == nil {
		return nil
	}
	return special(Special{Key: key, Kind: "temporary file", Why: "a file this tool is still writing, or one a killed write left behind (a temporary name: " + TempPrefix + " and hex digits)"})
}

// inDir runs fn on the open folder of key and the key's last element, and on success returns
// the folder still held (the caller releases it). The folder is made first when mkdir is set
// and it is missing; a folder removed since it was opened is opened afresh (dirCache.use).
func (l *local) inDir(key string, mkdir bool, fn func(d *openDir, name string) error) (*openDir, error) {
	root, err := l.open_()
	if err != nil {
		return nil, err
	}
	dir, name := splitKey(key)
	return l.dirs.use(root, dir, mkdir, l.dirMode, func(d *openDir) error { return fn(d, name) })
}

func (l *local) open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	var f *os.File
	d, err := l.inDir(key, false, func(d *openDir, name string) (err error) {
		f, err = d.root.OpenFile(name, openRegularFlags, 0)
		return err
	})
	if err != nil {
		return nil, Object{}, err
	}
	l.dirs.release(d)
	fi, err := regularOnly(f, key)
	if err != nil {
		return nil, Object{}, err
	}
	return f, objectOf(key, fi), nil
}

// openRegularFlags open a file for reading without blocking on a FIFO put where a file was
// listed, which regularOnly then refuses: opened as usual, it would block the reader for ever.
const openRegularFlags = os.O_RDONLY | syscall.O_NONBLOCK

// regularOnly returns the opened f's information if it is a regular file; otherwise it closes
// f and returns a *SpecialError naming key.
func regularOnly(f *os.File, key string) (fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &SpecialError{Special{Key: key, Kind: KindOf(fi.Mode())}}
	}
	return fi, nil
}

// OpenRegular opens the local file name for reading, and refuses without blocking anything
// but a regular file (a *SpecialError naming name, matching ErrNotRegular): what a backup
// folder holds is read with it, since a FIFO put there in place of a file would block its
// reader for ever.
func OpenRegular(name string) (*os.File, error) {
	f, err := os.OpenFile(name, openRegularFlags, 0)
	if err != nil {
		return nil, err
	}
	if _, err := regularOnly(f, name); err != nil {
		return nil, err
	}
	return f, nil
}

// ReadRegular reads the local regular file name whole, refusing as OpenRegular does anything
// but a regular file, and a file of more than limit bytes with an error naming it: the small
// files of a backup (its metadata, a sidecar, a sealed key, a staging owner record) are read
// whole into memory, and a huge one put in their place must not take the memory with it.
func ReadRegular(name string, limit int64) ([]byte, error) {
	f, err := OpenRegular(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := ReadLimited(f, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

// ReadLimited reads r to its end, or refuses it (CodeInvalid) once it holds more than limit
// bytes: for small files, read whole, from wherever they come.
func ReadLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, withCode(CodeInvalid, fmt.Errorf("larger than %d bytes, more than such a file holds", limit))
	}
	return data, nil
}

func (l *local) stat(ctx context.Context, key string) (Object, error) {
	root, err := l.open_()
	if err != nil {
		return Object{}, err
	}
	fi, err := root.Stat(key)
	if err != nil {
		return Object{}, err
	}
	return objectOf(key, fi), nil
}

func (l *local) create(ctx context.Context, key string, attrs Object) (Writer, error) {
	if _, err := l.open_(); err != nil {
		return nil, fmt.Errorf("destination root: %w", err)
	}
	w := &localWriter{l: l, key: key, attrs: attrs, deferSync: l.deferSync}
	// The writer keeps its folder open (and in the cache) until it is committed or aborted.
	d, err := l.inDir(key, true, func(d *openDir, name string) (err error) {
		w.final = name
		w.tmp = newTempName()
		w.f, err = d.root.OpenFile(w.tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		return err
	})
	if err != nil {
		// os.Root says "not a directory" and "path escapes from parent" with errors of its own:
		// the folders on the key's path say which it was.
		if name, mode, ok := l.notFolderOnPath(key); ok && localCode(err) == CodeUnknown {
			return nil, withCode(CodeConflict, notFolderError(key, name, mode, err))
		}
		return nil, err
	}
	w.d = d
	return w, nil
}

// notFolderOnPath names the first of key's folders that is something else than a folder, and
// its mode.
func (l *local) notFolderOnPath(key string) (string, fs.FileMode, bool) {
	root, err := l.open_()
	if err != nil {
		return "", 0, false
	}
	for i := 0; i < len(key); i++ {
		if key[i] != '/' {
			continue
		}
		fi, err := root.Lstat(key[:i])
		if err != nil {
			return "", 0, false
		}
		if !fi.IsDir() {
			return key[:i], fi.Mode(), true
		}
	}
	return "", 0, false
}

// notFolderError says why key cannot be created: its folder name is a file (its source holds
// a file and files under its name) or a link (never written through).
func notFolderError(key, name string, mode fs.FileMode, err error) error {
	if mode&fs.ModeSymlink != 0 {
		return fmt.Errorf("create %s: %s is a symbolic link, and nothing is written through a link: make it a folder, or give the folder it points to as the storage: %w", QuoteKey(key), QuoteKey(name), err)
	}
	kind := "file"
	if !mode.IsRegular() {
		kind = KindOf(mode)
	}
	return fmt.Errorf("create %s: the %s %s stands where its folder should be (its source holds a file and files under it of one name, as S3 allows and no file system does): %w", QuoteKey(key), kind, QuoteKey(name), err)
}

func (l *local) remove(ctx context.Context, key string) error {
	root, err := l.open_()
	if err != nil {
		return err
	}
	return root.Remove(key)
}

func (l *local) removeAll(ctx context.Context, prefix string) error {
	root, err := l.open_()
	if err != nil {
		return err
	}
	prefix = strings.TrimSuffix(prefix, "/")
	l.dirs.forgetUnder(prefix)
	return root.RemoveAll(prefix)
}

// sync makes what was committed durable: one syncfs(2) of the filesystem, which writes every
// file's data and inode and every folder's entries, where a sync of each file would wait for
// the disk once per file.
func (l *local) sync(ctx context.Context) error {
	if !l.deferSync || !l.dirty.Swap(false) {
		return nil
	}
	_, err := l.open_()
	if err == nil {
		err = syncFS(l.syncFile)
	}
	if err != nil {
		l.dirty.Store(true)
	}
	return err
}

type localWriter struct {
	l         *local
	d         *openDir // the object's folder, held open until Commit or Abort
	f         *os.File
	tmp       string // the file's temporary name in d
	final     string // the object's name in d
	key       string // the object's key in the bucket
	attrs     Object
	deferSync bool
	done      bool
}

func (w *localWriter) setAttrs(attrs Object) { w.attrs = attrs }

func (w *localWriter) Write(p []byte) (int, error) { return w.f.Write(p) }

// ReadFrom lets io.Copy use copy_file_range/sendfile between files.
func (w *localWriter) ReadFrom(r io.Reader) (int64, error) { return w.f.ReadFrom(r) }

func (w *localWriter) Commit() error {
	if w.done {
		return errors.New("commit: writer already closed")
	}
	w.done = true
	defer w.l.dirs.release(w.d)
	mode := w.attrs.Mode.Perm()
	if mode == 0 {
		mode = 0o644 & (w.l.dirMode | 0o600) // readable by whom its folders are
	}
	err := w.l.owner.giveFile(w.f) // first: a change of owner clears the setuid and setgid bits
	if err == nil {
		err = w.f.Chmod(mode)
	}
	if err == nil && !w.attrs.ModTime.IsZero() {
		err = setModTime(w.f, w.d.root, w.tmp, w.attrs.ModTime)
	}
	if err == nil {
		if w.deferSync {
			// Start writing it out now, beside the copies still running, so that little is
			// left for the sync that makes it durable.
			startWriteback(w.f)
		} else {
			// On disk before it gets its name, as a committed object should be.
			err = w.f.Sync()
		}
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.d.root.Rename(w.tmp, w.final)
		if errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
			err = withCode(CodeConflict, fmt.Errorf("commit %s: a folder stands where the file should be (its source holds files under this key's name, as S3 allows and no file system does): %w", QuoteKey(w.key), err))
		}
	}
	if err != nil {
		w.d.root.Remove(w.tmp)
		return err
	}
	if w.deferSync {
		w.l.dirty.Store(true) // after the rename: a sync already under way may miss this file
	}
	return nil
}

func (w *localWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.l.dirs.release(w.d)
	w.f.Close()
	return w.d.root.Remove(w.tmp)
}

func (l *local) rename(ctx context.Context, from, to string) error {
	root, err := l.open_()
	if err != nil {
		return err
	}
	if dir := path.Dir(to); dir != "." {
		if err := l.owner.MkdirAll(root, dir, l.dirMode); err != nil {
			return err
		}
	}
	return root.Rename(from, to)
}

// maxOpenDirs bounds the folders one bucket keeps open: files are copied in walk order, a
// folder after another, so a few cover the copies in flight.
const maxOpenDirs = 32

// openDir is a folder of a local bucket, open as a root of its own: operations on a name in
// it are single *at system calls, and cannot leave it any more than the bucket's root.
type openDir struct {
	root *os.Root
	path string // in the bucket; "" for the bucket's root
	// handle is the folder opened as a file, on first need (linkAt on Linux, which takes
	// descriptors of two folders where a Root offers only names within itself).
	handleOnce sync.Once
	handle     *os.File
	handleErr  error
	refs       int
	used       uint64
	evicted    bool // out of the cache: closed when the last user releases it
}

// dirCache keeps the most recently used folders of a bucket open.
type dirCache struct {
	mu   sync.Mutex
	m    map[string]*openDir
	tick uint64
	top  *openDir // the bucket's root, never closed here
	// owner is who the folders made are given (local.owner).
	owner *Owner
}

// acquire returns the open folder dir (a slash path, "" for the root), opening (and with
// mkdir, making) it if needed; cached tells that it was open already. The caller releases it.
func (c *dirCache) acquire(root *os.Root, dir string, mkdir bool, mode fs.FileMode) (d *openDir, cached bool, err error) {
	c.mu.Lock()
	if dir == "" {
		if c.top == nil {
			c.top = &openDir{root: root}
		}
		c.mu.Unlock()
		return c.top, false, nil
	}
	if d := c.m[dir]; d != nil {
		c.tick++
		d.refs++
		d.used = c.tick
		c.mu.Unlock()
		return d, true, nil
	}
	c.mu.Unlock()

	sub, err := root.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) && mkdir {
		if err = c.owner.MkdirAll(root, dir, mode); err == nil {
			sub, err = root.OpenRoot(dir)
		}
	}
	if err != nil {
		return nil, false, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if d := c.m[dir]; d != nil { // opened meanwhile by another copy
		sub.Close()
		d.refs++
		d.used = c.tick
		return d, true, nil
	}
	if c.m == nil {
		c.m = map[string]*openDir{}
	}
	d = &openDir{root: sub, path: dir, refs: 1, used: c.tick}
	c.m[dir] = d
	for len(c.m) > maxOpenDirs {
		var old *openDir
		for _, e := range c.m {
			if old == nil || e.used < old.used {
				old = e
			}
		}
		c.evictLocked(old)
	}
	return d, false, nil
}

// use runs fn on dir's open folder, acquired as acquire does, and on success returns the folder
// still held (the caller releases it). A folder kept open may have been removed since (by
// RemoveAll, or by anyone on the host): when fn finds a name missing in a folder that was open
// already, the folder is opened afresh by its path and fn is tried once more.
func (c *dirCache) use(root *os.Root, dir string, mkdir bool, mode fs.FileMode, fn func(d *openDir) error) (*openDir, error) {
	for attempt := 0; ; attempt++ {
		d, cached, err := c.acquire(root, dir, mkdir, mode)
		if err != nil {
			return nil, err
		}
		err = fn(d)
		if err == nil {
			return d, nil
		}
		if errors.Is(err, fs.ErrNotExist) && cached && attempt == 0 {
			c.forget(d)
			c.release(d)
			continue
		}
		c.release(d)
		return nil, err
	}
}

// release ends a use of d.
func (c *dirCache) release(d *openDir) {
	if d == nil || d.path == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d.refs--
	if d.evicted && d.refs == 0 {
		d.close()
	}
}

// forget drops d from the cache (its folder is gone).
func (c *dirCache) forget(d *openDir) {
	if d.path == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[d.path] == d {
		c.evictLocked(d)
	}
}

// forgetUnder drops the folders at or under prefix, which is about to be removed.
func (c *dirCache) forgetUnder(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, d := range c.m {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			c.evictLocked(d)
		}
	}
}

func (c *dirCache) evictLocked(d *openDir) {
	delete(c.m, d.path)
	d.evicted = true
	if d.refs == 0 {
		d.close()
	}
}

// file returns d opened as a file, opening it the first time.
func (d *openDir) file() (*os.File, error) {
	d.handleOnce.Do(func() { d.handle, d.handleErr = d.root.Open(".") })
	return d.handle, d.handleErr
}

// close closes d's root and handle.
func (d *openDir) close() {
	if d.handle != nil {
		d.handle.Close()
	}
	d.root.Close()
}

func (c *dirCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.m {
		c.evictLocked(d)
	}
}
