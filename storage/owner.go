package storage

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
)

// A restore run as root writes files the platform must go on changing: an upload into a
// restored folder, a file replaced or deleted by the site. Made by root, they would be out of
// its reach. So what a bucket opened with GiveToFolderOwner makes — files, links and folders —
// is given the owner and group of the bucket's root folder, the storage the platform runs as,
// as a restore run as the platform's user would have made them. A backup records no owners:
// one storage has one owner, which a restore takes from the folder it restores into.

// GiveToFolderOwner opens a local folder so that, when this process runs as root and the
// folder belongs to another user or group, every file and folder the bucket makes is given
// the folder's owner and group (see Owner). S3 buckets ignore it.
func GiveToFolderOwner() Option { return func(o *openOptions) { o.giveToOwner = true } }

// Owner is the user and group a local storage's files are given: its root folder's, when
// this process runs as root and they are not root's. A nil *Owner gives nothing away.
type Owner struct {
	UID, GID int

	warnOnce sync.Once
}

// OwnerOf returns who what is made under root is given: nil when this process does not run
// as root (what it makes is its own, as the platform's would be) or when root belongs to
// root.
func OwnerOf(root *os.Root) *Owner {
	fi, err := root.Stat(".")
	if err != nil {
		return nil
	}
	return ownerOfFolder(fi)
}

// ownerOfFolder is OwnerOf for the folder fi describes.
func ownerOfFolder(fi fs.FileInfo) *Owner {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, ok := FileOwner(fi)
	if !ok || (uid == 0 && gid == 0) {
		return nil
	}
	return &Owner{UID: uid, GID: gid}
}

// give gives name under root to o, unless it is o's already (fi, when known, says whose it
// is).
func (o *Owner) give(root *os.Root, name string, fi fs.FileInfo) error {
	if o == nil {
		return nil
	}
	if fi != nil {
		if uid, gid, ok := FileOwner(fi); ok && uid == o.UID && gid == o.GID {
			return nil
		}
	}
	return o.tolerate(root.Lchown(name, o.UID, o.GID))
}

// giveFile gives an open file to o.
func (o *Owner) giveFile(f *os.File) error {
	if o == nil {
		return nil
	}
	return o.tolerate(f.Chown(o.UID, o.GID))
}

// tolerate lets a refusal to give a file away pass, with one warning: root without the
// right to (a root-squashed NFS mount, a user namespace without the owner's id) writes the
// files as before, as the system makes them, rather than failing a restore over their owner.
// Any other error is returned.
func (o *Owner) tolerate(err error) error {
	if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	o.warnOnce.Do(func() {
		slog.Warn("restored files and folders cannot be given to the storage folder's owner; they stay as the system makes them", "owner", o.UID, "group", o.GID, "err", err)
	})
	return nil
}

// MkdirAll makes dir and any folder above it that is missing under root, with mode, and gives
// each folder it makes to o (with a nil o: root.MkdirAll).
func (o *Owner) MkdirAll(root *os.Root, dir string, mode fs.FileMode) error {
	dir = strings.TrimSuffix(dir, "/")
	if o == nil {
		return root.MkdirAll(dir, mode)
	}
	if fi, err := root.Stat(dir); err == nil && fi.IsDir() {
		return nil // made already: the common case, one call
	}
	for i := 1; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		err := root.Mkdir(dir[:i], mode)
		if errors.Is(err, fs.ErrExist) {
			if fi, serr := root.Stat(dir[:i]); serr != nil || !fi.IsDir() {
				return &fs.PathError{Op: "mkdir", Path: dir[:i], Err: syscall.ENOTDIR}
			}
			continue
		}
		if err == nil {
			err = o.tolerate(root.Lchown(dir[:i], o.UID, o.GID))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
