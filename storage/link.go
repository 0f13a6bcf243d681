package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ErrNoLink is returned (wrapped) by LinkFrom when the file cannot be linked: the buckets are
// not both local folders, the source is gone, or the filesystem refuses (another device, too
// many links). The caller then copies the file.
var ErrNoLink = errors.New("cannot hard-link between these buckets")

// LinkFrom makes dstKey in b a hard link to srcKey in src, replacing what dstKey held: both
// buckets must be local folders on one filesystem. The link appears whole or not at all, and
// in a DeferSync bucket it is made durable by Sync like a written file.
func (b *Bucket) LinkFrom(ctx context.Context, src *Bucket, srcKey, dstKey string) (Object, error) {
	return b.LinkFromAs(ctx, src, srcKey, dstKey, Object{})
}

// LinkFromAs is LinkFrom that first gives srcKey attrs' permissions and modification time
// (each when set), so that the link takes its name with them: src must be a private copy that
// nothing else reads, since the source is changed (the two names are one file). The source
// is a file checked already, so no symbolic link: its permissions are set through its name.
func (b *Bucket) LinkFromAs(ctx context.Context, src *Bucket, srcKey, dstKey string, attrs Object) (Object, error) {
	if err := src.checkKey(srcKey); err != nil {
		return Object{}, err
	}
	if err := b.checkKey(dstKey); err != nil {
		return Object{}, err
	}
	dl, ok1 := b.drv.(*local)
	sl, ok2 := src.drv.(*local)
	if !ok1 || !ok2 {
		return Object{}, fmt.Errorf("link %s from %s into %s: %w", srcKey, src, b, ErrNoLink)
	}
	obj, err := dl.linkFrom(sl, srcKey, dstKey, attrs)
	if err != nil {
		return Object{}, fmt.Errorf("link %s from %s to %s in %s: %w: %w", srcKey, src, dstKey, b, ErrNoLink, err)
	}
	return obj, nil
}

// linkFrom links srcKey's folder entry, through the two buckets' open folders (one linkat of
// a single name to another, no walk down either path), then checks what was linked by the new
// name: a regular file, whose size and time the caller compares with what the plan expected.
// Checking the link rather than the source before it leaves no gap between check and link.
func (l *local) linkFrom(src *local, srcKey, dstKey string, attrs Object) (Object, error) {
	sroot, err := src.open_()
	if err != nil {
		return Object{}, err
	}
	sdir, sname := splitKey(srcKey)
	var obj Object
	// The source's folder kept open may have been removed and made again since: use retries.
	sd, err := src.dirs.use(sroot, sdir, false, src.dirMode, func(sd *openDir) (err error) {
		if err := setAttrsAt(sd, sname, attrs); err != nil {
			return err
		}
		obj, err = l.linkInto(sd, sname, srcKey, dstKey)
		return err
	})
	if err != nil {
		return Object{}, err
	}
	src.dirs.release(sd)
	return obj, nil
}

// setAttrsAt gives sname in the open folder sd attrs' permissions and modification time (its
// access time is left as it is), each when set.
func setAttrsAt(sd *openDir, sname string, attrs Object) error {
	if attrs.Mode != 0 {
		if err := sd.root.Chmod(sname, attrs.Mode.Perm()); err != nil {
			return err
		}
	}
	if !attrs.ModTime.IsZero() {
		return sd.root.Chtimes(sname, time.Time{}, attrs.ModTime)
	}
	return nil
}

// linkInto links sname of the open folder sd as dstKey. The destination's folder is made, and
// kept open, as for a written file. A link appears whole, so it takes its name at once; only a
// name already taken (a task redone) is replaced through a temporary name.
func (l *local) linkInto(sd *openDir, sname, srcKey, dstKey string) (Object, error) {
	var fi fs.FileInfo
	d, err := l.inDir(dstKey, true, func(d *openDir, name string) (err error) {
		err = linkAt(sd, sname, d, name)
		if err == nil {
			fi, err = linkedFile(d, name, srcKey)
		} else if errors.Is(err, fs.ErrExist) {
			fi, err = relink(sd, sname, srcKey, d, name)
		}
		if err == nil {
			// A private copy linked into a storage given to its owner (no backup's file is
			// ever linked into one): one more call only when the copy is another's.
			err = l.owner.give(d.root, name, fi)
		}
		return err
	})
	if err != nil {
		return Object{}, err
	}
	l.dirs.release(d)
	if l.deferSync {
		l.dirty.Store(true)
	}
	return objectOf(dstKey, fi), nil
}

// linkedFile returns what the new link name in d is, and removes it when that is no regular
// file (a base's copy replaced by a FIFO or a symbolic link is not linked into a backup).
func linkedFile(d *openDir, name, srcKey string) (fs.FileInfo, error) {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		d.root.Remove(name)
		return nil, &SpecialError{Special{Key: srcKey, Kind: KindOf(fi.Mode())}}
	}
	return fi, nil
}

// relink puts sname of sd in place of name in d, which is taken: by the link already (a task
// redone), or by something else, replaced through a temporary name.
func relink(sd *openDir, sname, srcKey string, d *openDir, name string) (fs.FileInfo, error) {
	if cur, err := d.root.Lstat(name); err == nil {
		if src, err := sd.root.Lstat(sname); err == nil && os.SameFile(cur, src) && cur.Mode().IsRegular() {
			return cur, nil // linked already (rename would keep both names of one file)
		}
	}
	tmp := newTempName()
	if err := linkAt(sd, sname, d, tmp); err != nil {
		return nil, err
	}
	fi, err := linkedFile(d, tmp, srcKey)
	if err != nil {
		return nil, err
	}
	if err := d.root.Rename(tmp, name); err != nil {
		d.root.Remove(tmp)
		return nil, err
	}
	return fi, nil
}

// splitKey returns key's folder (without a trailing slash, "" for the bucket's root) and last
// element.
func splitKey(key string) (dir, name string) {
	dir, name = path.Split(key)
	return strings.TrimSuffix(dir, "/"), name
}

// Folders lists the names of the folders at the bucket's top level (on S3, the common
// prefixes before the first "/"), without listing what they hold.
func (b *Bucket) Folders(ctx context.Context) ([]string, error) {
	var (
		names []string
		err   error
	)
	switch d := b.drv.(type) {
	case *local:
		names, err = d.folders()
	case *s3Driver:
		names, err = d.folders(ctx)
	default:
		err = errors.New("listing folders is not supported")
	}
	if err != nil {
		return nil, fmt.Errorf("list folders of %s: %w", b, err)
	}
	return names, nil
}

func (l *local) folders() ([]string, error) {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

func (d *s3Driver) folders(ctx context.Context) ([]string, error) {
	p := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(d.bucket), Prefix: aws.String(d.root), Delimiter: aws.String("/"),
		EncodingType: types.EncodingTypeUrl,
	})
	var names []string
	var guard listingGuard
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		if err := guard.check(len(page.CommonPrefixes)+len(page.Contents), aws.ToBool(page.IsTruncated)); err != nil {
			return nil, err
		}
		for _, cp := range page.CommonPrefixes {
			prefix, err := listedKey(page.EncodingType, aws.ToString(cp.Prefix))
			if err != nil {
				return nil, err
			}
			name := strings.TrimSuffix(strings.TrimPrefix(prefix, d.root), "/")
			if name != "" {
				names = append(names, name)
			}
		}
	}
	return names, nil
}
