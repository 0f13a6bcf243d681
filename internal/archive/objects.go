package archive

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"
)

// Object is one file of a backup that is not in a local folder (e.g. on S3).
type Object struct {
	// Key is the path inside the backup ("files/content/1/1.json").
	Key     string
	Size    int64
	Mode    fs.FileMode
	ModTime time.Time
}

// WriteObjects writes objects as a tar.gz under the top folder top, like Write does for a
// folder: backup_metadata.json and SHA256SUMS first, the rest sorted by key, content read
// through open. Parent folders
// are implied by the file entries (tar and Extract create them).
func WriteObjects(ctx context.Context, w io.Writer, top string, objs []Object, open func(key string) (io.ReadCloser, error), opts ...Option) (Stats, error) {
	var st Stats
	o := writeOptions(opts)
	if top == "" || top == "." || top == ".." || strings.ContainsAny(top, "/\\\x00") {
		return st, fmt.Errorf("archive: top folder %q must be one path component", top)
	}
	sorted := sortLeading(objs)
	gz, err := o.gzipWriter(w)
	if err != nil {
		return st, err
	}
	closed := false
	defer func() {
		if !closed {
			gz.Close()
		}
	}()
	tw := tar.NewWriter(gz)
	buf := make([]byte, 256<<10)
	for _, obj := range sorted {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		mode := obj.Mode.Perm()
		if mode == 0 {
			mode = 0o600 // a backup's files are private
		}
		hdr := &tar.Header{Name: top + "/" + obj.Key, Mode: int64(mode), ModTime: obj.ModTime.Truncate(time.Second),
			Typeflag: tar.TypeReg, Size: obj.Size}
		r, err := open(obj.Key)
		if err != nil {
			return st, fmt.Errorf("archive %s: %w", obj.Key, err)
		}
		err = tw.WriteHeader(hdr)
		var n int64
		if err == nil {
			n, err = io.CopyBuffer(tw, ctxReader{ctx, io.LimitReader(r, obj.Size)}, buf)
		}
		r.Close()
		if err != nil {
			return st, fmt.Errorf("archive %s: %w", obj.Key, err)
		}
		if n != obj.Size {
			return st, fmt.Errorf("archive %s: object shrank from %d to %d bytes while archived", obj.Key, obj.Size, n)
		}
		st.Files++
		st.Bytes += n
		if o.progress != nil {
			o.progress(n)
		}
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	closed = true
	return st, gz.Close()
}

// sortLeading returns objs sorted by key, the leading files first.
func sortLeading(objs []Object) []Object {
	sorted := append([]Object(nil), objs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		ri, rj := leadingRank(sorted[i].Key), leadingRank(sorted[j].Key)
		if ri != rj {
			return ri < rj
		}
		return sorted[i].Key < sorted[j].Key
	})
	return sorted
}

// leadingRank orders the leading files (metadata, then SHA256SUMS) before every other key.
func leadingRank(key string) int {
	for i, name := range leading {
		if key == name {
			return i
		}
	}
	return len(leading)
}

// WithProgress (Write, WriteObjects) calls fn with the bytes of each file once it is archived.
func WithProgress(fn func(n int64)) Option { return func(o *options) { o.progress = fn } }
