// Package storage is one small portable type, Bucket, over the places files live: the
// platform's storage (MEDIA_ROOT or an S3 prefix) and backup destinations.
//
// Keys are slash-separated paths relative to the bucket's root ("content/12/3.json").
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"time"
)

// ErrNotExist is returned (wrapped) for a key that is not there.
var ErrNotExist = fs.ErrNotExist

// Object describes one stored file.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	// Mode holds the permission bits where the driver keeps them (0 otherwise).
	Mode fs.FileMode
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

// Writer writes one object. Nothing is visible under the key until Commit; Abort (or a failed
// Commit) leaves no trace, so a redelivered task simply writes again.
type Writer interface {
	io.Writer
	// Commit makes the object visible under its key, replacing any previous one.
	Commit() error
	// Abort discards what was written. It is safe after Commit (then it does nothing).
	Abort() error
}

// Bucket is a place that holds files by key.
type Bucket struct {
	drv driver
}

// Open opens a bucket from a URL: a plain path or file:// URL for a local folder.
func Open(ctx context.Context, rawURL string) (*Bucket, error) {
	if rawURL == "" {
		return nil, errors.New("open storage: empty location")
	}
	switch {
	case strings.HasPrefix(rawURL, "file://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("open storage %s: %w", rawURL, err)
		}
		return &Bucket{drv: newLocal(u.Path)}, nil
	case strings.Contains(rawURL, "://"):
		scheme, _, _ := strings.Cut(rawURL, "://")
		return nil, fmt.Errorf("open storage %s: unsupported scheme %q (use a path or file://)", rawURL, scheme)
	default:
		return &Bucket{drv: newLocal(rawURL)}, nil
	}
}

// Close releases what the bucket holds open.
func (b *Bucket) Close() error { return b.drv.close() }

// String describes the bucket for logs (never with credentials).
func (b *Bucket) String() string { return b.drv.describe() }

// Backend is the Django storage class this bucket stands for ("FileSystemStorage").
func (b *Bucket) Backend() string { return b.drv.backend() }

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

// Open opens an object for reading.
func (b *Bucket) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	if err := CheckKey(key); err != nil {
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
	if err := CheckKey(key); err != nil {
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
	if err := CheckKey(key); err != nil {
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
	w, err := b.Create(ctx, key, attrs)
	if err != nil {
		return 0, err
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

// Remove deletes one object; a missing one is not an error.
func (b *Bucket) Remove(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
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
		return fmt.Errorf("remove all under %q: refusing an empty or bad prefix", prefix)
	}
	if err := b.drv.removeAll(ctx, prefix); err != nil {
		return fmt.Errorf("remove %s in %s: %w", prefix, b, err)
	}
	return nil
}

// CheckKey refuses keys that could escape the bucket: empty, absolute, with "." or ".."
// segments, backslashes or NUL bytes.
func CheckKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\x00\\") || path.Clean(key) != key {
		return fmt.Errorf("bad storage key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("bad storage key %q", key)
		}
	}
	return nil
}

func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return CheckKey(strings.TrimSuffix(prefix, "/"))
}
