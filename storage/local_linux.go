package storage

import (
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// canSyncFS: syncfs(2) makes a whole filesystem durable at once.
const canSyncFS = true

func syncFS(f *os.File) error {
	return control(f, func(fd int) error { return unix.Syncfs(fd) })
}

// startWriteback asks the kernel to start writing f's data out, without waiting for it. It is
// only a head start for a later sync, so a failure is ignored.
func startWriteback(f *os.File) {
	control(f, func(fd int) error { return unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE) })
}

// setModTime sets f's modification time through its descriptor (futimens), leaving its access
// time as it is.
func setModTime(f *os.File, _ *os.Root, _ string, mtime time.Time) error {
	// Not through UnixNano, which covers only 1678 to 2262.
	m, err := unix.TimeToTimespec(mtime)
	if err != nil {
		return err
	}
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, m}
	return control(f, func(fd int) error {
		// utimensat(fd, NULL, ...) is futimens(3): the descriptor's file itself.
		_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if errno != 0 {
			return &os.PathError{Op: "futimens", Path: f.Name(), Err: errno}
		}
		return nil
	})
}

// control runs fn on f's descriptor.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// linkAt makes dname in folder d a hard link to sname in folder s: one linkat(2) between the
// two folders' descriptors, names without a slash, so no path is walked and a symbolic link
// named sname is linked itself, never followed.
func linkAt(s *openDir, sname string, d *openDir, dname string) error {
	sf, err := s.file()
	if err != nil {
		return err
	}
	df, err := d.file()
	if err != nil {
		return err
	}
	return control(sf, func(sfd int) error {
		return control(df, func(dfd int) error {
			for {
				err := unix.Linkat(sfd, sname, dfd, dname, 0)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					return &os.LinkError{Op: "linkat", Old: path.Join(s.path, sname), New: path.Join(d.path, dname), Err: err}
				}
				return nil
			}
		})
	})
}

// FileOwner returns the user and group that own the file fi describes (ok false where they
// are not known).
func FileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// ChangeTime is fi's inode change time, which no one can set back (zero where the system does
// not give it).
func ChangeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return time.Time{}
}
