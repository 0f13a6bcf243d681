// Package storage is one small portable type, Bucket, over the places files live: the
// platform's storage (MEDIA_ROOT or an S3 prefix) and backup destinations.
//
// Keys are slash-separated paths relative to the bucket's root ("content/12/3.json").
package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/webnovel/webnovel-backup/internal/redact"
)

// ErrNotExist is returned (wrapped) for a key that is not there.
var ErrNotExist = fs.ErrNotExist

// ErrNoServerSideCopy is returned (wrapped) by CopyFrom when the two buckets cannot copy
// between themselves; the caller then streams the object (Open, Create, Commit).
var ErrNoServerSideCopy = errors.New("no server-side copy between these buckets")

// Object describes one stored file.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	// Mode holds the permission bits where the driver keeps them (0 otherwise).
	Mode fs.FileMode
	// Unkept, for a local file, holds the mode bits this tool does not keep beside the
	// permissions: setuid, setgid, sticky (a restore never sets them).
	Unkept fs.FileMode
	// LastModified is when the object was last written in the bucket (S3's LastModified; a
	// local file's modification time), whatever ModTime the object carries as metadata.
	LastModified time.Time
	// ETag is the S3 object's entity tag as the service gives it (quotes removed), "" for a
	// local file.
	ETag string
}

// driver is what a storage backend implements; Bucket adds key checks and error context.
type driver interface {
	walk(ctx context.Context, prefix string, fn func(Object) error) error
	open(ctx context.Context, key string) (io.ReadCloser, Object, error)
	stat(ctx context.Context, key string) (Object, error)
	create(ctx context.Context, key string, attrs Object) (Writer, error)
	remove(ctx context.Context, key string) error
	removeAll(ctx context.Context, prefix string) error
	describe() string
	backend() string
	close() error
}

// copier is a driver that can copy objects server-side.
type copier interface {
	copyFrom(ctx context.Context, src driver, srcKey, dstKey string) (Object, error)
}

// summer is a driver that may know an object's SHA-256 without reading it ("" if not).
type summer interface {
	sha256(ctx context.Context, key string) (string, error)
}

// Writer writes one object. Nothing is visible under the key until Commit; Abort (or a failed
// Commit) leaves no trace, so a redelivered task simply writes again.
type Writer interface {
	io.Writer
	// Commit makes the object visible under its key, replacing any previous one.
	Commit() error
	// Abort discards what was written. It is safe after Commit (then it does nothing).
	Abort() error
}

// attrSetter is a Writer that applies the object's mode and time at Commit.
type attrSetter interface {
	setAttrs(attrs Object)
}

// SetAttrs gives w the mode and modification time to commit its object with, in place of the
// ones given to Create, and reports whether w took them: a local folder's writers do (they
// apply them at Commit); others fixed them at Create.
func SetAttrs(w Writer, attrs Object) bool {
	s, ok := w.(attrSetter)
	if ok {
		s.setAttrs(attrs)
	}
	return ok
}

// Bucket is a place that holds files by key.
type Bucket struct {
	drv driver
}

// Option adjusts how Open opens a bucket.
type Option func(*openOptions)

type openOptions struct {
	deferSync   bool
	giveToOwner bool
}

// DeferSync opens a local folder as a staging area that is made durable as a whole before it
// is published: writers commit without waiting for the disk, and Sync then makes everything
// committed durable at once, one sync of the filesystem instead of one per file. Objects still
// appear whole or not at all. S3 buckets, whose objects are durable once written, ignore it.
func DeferSync() Option { return func(o *openOptions) { o.deferSync = true } }

// syncer is a driver that can make what was written durable at once.
type syncer interface {
	sync(ctx context.Context) error
}

// Sync makes every object committed through b so far durable. It does work only for a local
// bucket opened with DeferSync.
func (b *Bucket) Sync(ctx context.Context) error {
	s, ok := b.drv.(syncer)
	if !ok {
		return nil
	}
	if err := s.sync(ctx); err != nil {
		return fmt.Errorf("sync %s: %w", b, err)
	}
	return nil
}

// LocalPath is the folder a local location names: file:///srv/media is /srv/media, a plain
// path is itself. (An s3:// location comes back as it is.)
func LocalPath(location string) string {
	if p, ok := strings.CutPrefix(location, "file://"); ok {
		return p
	}
	return location
}

// Open opens a bucket from a URL: a plain path or file:// URL for a local folder, or
// "s3://bucket/prefix?region=…&endpoint=…&path_style=true" for a prefix of an S3 bucket
// (see openS3 for every parameter; credentials come from the standard AWS chain).
func Open(ctx context.Context, rawURL string, opts ...Option) (*Bucket, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	if rawURL == "" {
		return nil, errors.New("open storage: empty location")
	}
	switch {
	case IsS3(rawURL):
		d, err := openS3(ctx, rawURL)
		if err != nil {
			return nil, fmt.Errorf("open storage %s: %w", redact.URL(rawURL), err)
		}
		return &Bucket{drv: d}, nil
	case strings.HasPrefix(rawURL, "file://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("open storage %s: %w", rawURL, err)
		}
		return &Bucket{drv: newLocal(u.Path, o)}, nil
	case strings.Contains(rawURL, "://"):
		scheme, _, _ := strings.Cut(rawURL, "://")
		return nil, fmt.Errorf("open storage %s: unsupported scheme %q (use a path, file:// or s3://)", redact.URL(rawURL), scheme)
	default:
		return &Bucket{drv: newLocal(rawURL, o)}, nil
	}
}

// Close releases what the bucket holds open.
func (b *Bucket) Close() error { return b.drv.close() }

// String describes the bucket for logs (never with credentials).
func (b *Bucket) String() string { return b.drv.describe() }

// Backend is the Django storage class this bucket stands for: "FileSystemStorage" or
// "S3Boto3Storage".
func (b *Bucket) Backend() string { return b.drv.backend() }

// IsLocal reports whether b is a local folder.
func (b *Bucket) IsLocal() bool {
	_, ok := b.drv.(*local)
	return ok
}

// Walk calls fn for every object whose key starts with prefix, in a deterministic order.
func (b *Bucket) Walk(ctx context.Context, prefix string, fn func(Object) error) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if err := b.drv.walk(ctx, prefix, fn); err != nil {
		return fmt.Errorf("list %s in %s: %w", prefix, b, err)
	}
	return nil
}

// specialWalker is a driver that can hold entries that are not regular files (a local folder).
type specialWalker interface {
	walkSpecial(ctx context.Context, prefix string, fn func(Object) error, special func(Special) error) error
}

// WalkSpecial is Walk that also calls special for every entry it skips because it is not a
// regular file (symlinks, FIFOs, sockets, devices: only a local folder holds them), so the
// caller can say so. Links are never followed.
func (b *Bucket) WalkSpecial(ctx context.Context, prefix string, fn func(Object) error, special func(Special) error) error {
	w, ok := b.drv.(specialWalker)
	if !ok {
		return b.Walk(ctx, prefix, fn)
	}
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	if err := w.walkSpecial(ctx, prefix, fn, special); err != nil {
		return fmt.Errorf("list %s in %s: %w", prefix, b, err)
	}
	return nil
}

// Open opens an object for reading.
func (b *Bucket) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	if err := b.checkKey(key); err != nil {
		return nil, Object{}, err
	}
	r, o, err := b.drv.open(ctx, key)
	if err != nil {
		return nil, Object{}, fmt.Errorf("open %s in %s: %w", key, b, err)
	}
	return r, o, nil
}

// Stat describes an object.
func (b *Bucket) Stat(ctx context.Context, key string) (Object, error) {
	if err := b.checkKey(key); err != nil {
		return Object{}, err
	}
	o, err := b.drv.stat(ctx, key)
	if err != nil {
		return Object{}, fmt.Errorf("stat %s in %s: %w", key, b, err)
	}
	return o, nil
}

// Create starts writing an object; attrs.Mode and attrs.ModTime are applied where the driver
// keeps them.
func (b *Bucket) Create(ctx context.Context, key string, attrs Object) (Writer, error) {
	if err := b.checkKey(key); err != nil {
		return nil, err
	}
	w, err := b.drv.create(ctx, key, attrs)
	if err != nil {
		return nil, fmt.Errorf("create %s in %s: %w", key, b, err)
	}
	return w, nil
}

// Put writes a whole object from r.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, attrs Object) (int64, error) {
	return b.put(ctx, key, r, attrs, false)
}

// PutLowMemory is Put for a long stream whose upload speed matters less than the process's
// peak memory, such as a backup's SHA256SUMS (hundreds of MB at millions of files) at the
// end of a run: a driver that uploads in parts (S3) holds two part buffers, one filling
// while the other uploads, rather than one for each of concurrency parts in flight.
func (b *Bucket) PutLowMemory(ctx context.Context, key string, r io.Reader, attrs Object) (int64, error) {
	return b.put(ctx, key, r, attrs, true)
}

// partBuffered is a Writer that buffers parts to upload and can hold fewer of them.
type partBuffered interface{ holdFewerParts() }

func (b *Bucket) put(ctx context.Context, key string, r io.Reader, attrs Object, lowMemory bool) (int64, error) {
	w, err := b.Create(ctx, key, attrs)
	if err != nil {
		return 0, err
	}
	if pb, ok := w.(partBuffered); ok && lowMemory {
		pb.holdFewerParts()
	}
	n, err := io.Copy(w, r)
	if err != nil {
		w.Abort()
		return n, fmt.Errorf("write %s in %s: %w", key, b, err)
	}
	if err := w.Commit(); err != nil {
		return n, fmt.Errorf("write %s in %s: %w", key, b, err)
	}
	return n, nil
}

// CopyFrom copies src's srcKey to dstKey in b without the bytes passing through this process
// (S3 to S3 on the same service), keeping Mode and ModTime, and describes the copy. It
// returns ErrNoServerSideCopy (wrapped) when that is not possible, and the caller streams.
func (b *Bucket) CopyFrom(ctx context.Context, src *Bucket, srcKey, dstKey string) (Object, error) {
	if err := src.checkKey(srcKey); err != nil {
		return Object{}, err
	}
	if err := b.checkKey(dstKey); err != nil {
		return Object{}, err
	}
	c, ok := b.drv.(copier)
	if !ok {
		return Object{}, fmt.Errorf("copy %s from %s to %s: %w", srcKey, src, b, ErrNoServerSideCopy)
	}
	o, err := c.copyFrom(ctx, src.drv, srcKey, dstKey)
	if err != nil {
		return Object{}, fmt.Errorf("copy %s from %s to %s in %s: %w", srcKey, src, dstKey, b, err)
	}
	return o, nil
}

// Transfer copies src's srcKey to dstKey in b: server-side where the two are on one service
// (CopyFrom), else streamed through this process. attrs gives the streamed copy's mode and
// time from the source object's (nil keeps them).
func (b *Bucket) Transfer(ctx context.Context, src *Bucket, srcKey, dstKey string, attrs func(Object) Object) error {
	_, err := b.CopyFrom(ctx, src, srcKey, dstKey)
	if !errors.Is(err, ErrNoServerSideCopy) {
		return err
	}
	r, obj, err := src.Open(ctx, srcKey)
	if err != nil {
		return err
	}
	defer r.Close()
	if attrs != nil {
		obj = attrs(obj)
	}
	_, err = b.Put(ctx, dstKey, r, obj)
	return err
}

// SHA256 returns the hex SHA-256 of an object's content: the service's own full-object
// checksum where it keeps one (S3 objects uploaded in one piece), else by reading it.
func (b *Bucket) SHA256(ctx context.Context, key string) (string, error) {
	if err := b.checkKey(key); err != nil {
		return "", err
	}
	if s, ok := b.drv.(summer); ok {
		sum, err := s.sha256(ctx, key)
		if err != nil {
			return "", fmt.Errorf("checksum %s in %s: %w", key, b, err)
		}
		if sum != "" {
			return sum, nil
		}
	}
	r, _, err := b.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("checksum %s in %s: %w", key, b, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Remove deletes one object; a missing one is not an error.
func (b *Bucket) Remove(ctx context.Context, key string) error {
	if err := b.checkKey(key); err != nil {
		return err
	}
	if err := b.drv.remove(ctx, key); err != nil && !errors.Is(err, ErrNotExist) {
		return fmt.Errorf("remove %s in %s: %w", key, b, err)
	}
	return nil
}

// RemoveAll deletes every object under prefix.
func (b *Bucket) RemoveAll(ctx context.Context, prefix string) error {
	if err := checkPrefix(prefix); err != nil || prefix == "" {
		return withCode(CodeInvalid, fmt.Errorf("remove all under %q: refusing an empty or bad prefix", prefix))
	}
	if err := b.drv.removeAll(ctx, prefix); err != nil {
		return fmt.Errorf("remove %s in %s: %w", prefix, b, err)
	}
	return nil
}

// checkKey is CheckKey, and on S3, whose keys are text, refuses a key that is not UTF-8.
func (b *Bucket) checkKey(key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if _, ok := b.drv.(*s3Driver); ok && !utf8.ValidString(key) {
		return withCode(CodeInvalid, fmt.Errorf("key %s in %s: S3 keys must be UTF-8", QuoteKey(key), b))
	}
	return nil
}

func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return CheckKey(strings.TrimSuffix(prefix, "/"))
}

// IsS3 reports whether location names an S3 bucket (s3://...).
func IsS3(location string) bool {
	return len(location) >= 5 && strings.EqualFold(location[:5], "s3://")
}

// Join returns the location of key (or a sub-prefix) under location, keeping the URL's
// query: Join("s3://b/backups?region=x", "backup_1") is "s3://b/backups/backup_1?region=x",
// Join("/srv/backups", "backup_1") is "/srv/backups/backup_1".
func Join(location, key string) string {
	if !strings.Contains(location, "://") {
		return filepath.Join(location, filepath.FromSlash(key))
	}
	u, err := url.Parse(location)
	if err != nil {
		// Not a URL we can take apart: join the text, before any query.
		base, query, hasQuery := strings.Cut(location, "?")
		s := strings.TrimSuffix(base, "/") + "/" + key
		if hasQuery {
			s += "?" + query
		}
		return s
	}
	u.Path = path.Join("/", u.Path, key)
	if u.Host != "" && u.Scheme != "file" && u.Path == "/" {
		u.Path = ""
	}
	u.RawPath = ""
	return u.String()
}

// SameService reports whether a server-side copy between a and b is possible: both on the same
// S3 service.
func SameService(a, b *Bucket) bool {
	x, ok1 := a.drv.(*s3Driver)
	y, ok2 := b.drv.(*s3Driver)
	return ok1 && ok2 && x.endpoint == y.endpoint
}

// renamer is implemented by drivers that move an object in place (a local rename).
type renamer interface {
	rename(ctx context.Context, from, to string) error
}

// Rename moves an object within the bucket, replacing any object at to: a rename in a local
// folder, a server-side copy and delete on S3.
func (b *Bucket) Rename(ctx context.Context, from, to string) error {
	if err := b.checkKey(from); err != nil {
		return err
	}
	if err := b.checkKey(to); err != nil {
		return err
	}
	if r, ok := b.drv.(renamer); ok {
		if err := r.rename(ctx, from, to); err != nil {
			return fmt.Errorf("rename %s to %s in %s: %w", from, to, b, err)
		}
		return nil
	}
	if _, err := b.CopyFrom(ctx, b, from, to); err != nil {
		return err
	}
	return b.Remove(ctx, from)
}
