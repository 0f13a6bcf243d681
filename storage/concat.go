package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// concatenator is a driver that can concatenate objects without the bytes passing through
// this process (S3: a multipart upload of part copies).
type concatenator interface {
	concat(ctx context.Context, dstKey string, srcKeys []string, attrs Object) (Object, error)
}

// Concat writes the objects srcKeys of b, end to end, as the object dstKey, which appears
// only once whole (as every Writer's object). On S3 the sources of 5 MiB and more are copied
// server-side (UploadPartCopy) and only the smaller ones travel, merged into parts of at least
// that size; elsewhere, or on a service without part copies, every source is streamed.
func (b *Bucket) Concat(ctx context.Context, dstKey string, srcKeys []string, attrs Object) (Object, error) {
	if err := b.checkKey(dstKey); err != nil {
		return Object{}, err
	}
	for _, k := range srcKeys {
		if err := b.checkKey(k); err != nil {
			return Object{}, err
		}
	}
	if c, ok := b.drv.(concatenator); ok {
		o, err := c.concat(ctx, dstKey, srcKeys, attrs)
		if err == nil {
			return o, nil
		}
		if !errors.Is(err, ErrNoServerSideCopy) {
			return Object{}, fmt.Errorf("concatenate into %s in %s: %w", dstKey, b, err)
		}
	}
	return b.streamConcat(ctx, dstKey, srcKeys, attrs)
}

// streamConcat reads every source in turn into one new object.
func (b *Bucket) streamConcat(ctx context.Context, dstKey string, srcKeys []string, attrs Object) (Object, error) {
	w, err := b.Create(ctx, dstKey, attrs)
	if err != nil {
		return Object{}, err
	}
	defer w.Abort()
	var total int64
	for _, k := range srcKeys {
		r, _, err := b.Open(ctx, k)
		if err != nil {
			return Object{}, fmt.Errorf("concatenate into %s: %w", dstKey, err)
		}
		n, err := io.Copy(w, r)
		r.Close()
		if err != nil {
			return Object{}, fmt.Errorf("concatenate %s into %s in %s: %w", k, dstKey, b, err)
		}
		total += n
	}
	if err := w.Commit(); err != nil {
		return Object{}, fmt.Errorf("concatenate into %s in %s: %w", dstKey, b, err)
	}
	return Object{Key: dstKey, Size: total, Mode: attrs.Mode, ModTime: attrs.ModTime}, nil
}
