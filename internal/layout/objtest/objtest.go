// Package objtest builds object-store backups for tests from ordinary backup folders: each
// file of files/ becomes an object of the destination's object store, the backup's own
// prefix gets a file index instead of files/, and its SHA256SUMS and metadata are rewritten
// to vouch for the index, the way a backup to an object store writes them.
package objtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// Convert stores the backup folder dir as an object-store backup named like dir under root (a
// folder or s3:// location): its files in root's objects/, everything else under
// root/<name>/ with files_index.jsonl. It returns the backup's name and the index's
// entries; its name is dir's.
func Convert(t testing.TB, dir, root string) (string, []messages.FileEntry) {
	t.Helper()
	ctx := context.Background()
	src, err := storage.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := storage.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	data, err := os.ReadFile(filepath.Join(dir, layout.FileSums))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := layout.ParseSums(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(dir)
	var index []messages.FileEntry
	err = src.Walk(ctx, "", func(o storage.Object) error {
		key := o.Key
		if rel, ok := strings.CutPrefix(key, layout.FilesDir+"/"); ok {
			sum := sums[key]
			index = append(index, messages.FileEntry{Path: key, Key: rel, Size: o.Size, SHA256: sum, Mode: 0o644})
			return copyObject(ctx, src, dst, key, layout.ObjectKey(sum))
		}
		if key == layout.FileMetadata || key == layout.FileSums || key == layout.FileIndex {
			return nil // rewritten below
		}
		return copyObject(ctx, src, dst, key, name+"/"+key)
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(index, func(i, j int) bool { return index[i].Path < index[j].Path })
	var buf bytes.Buffer
	lw := messages.NewFileListWriter(&buf)
	for _, e := range index {
		if err := lw.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	sw := layout.NewSumsWriter()
	delete(sums, layout.FileIndex) // the folder's own index, replaced by the one below
	for p, s := range sums {
		if err := sw.Add(p, s); err != nil {
			t.Fatal(err)
		}
	}
	isum := sha256.Sum256(buf.Bytes())
	if err := sw.Add(layout.FileIndex, hex.EncodeToString(isum[:])); err != nil {
		t.Fatal(err)
	}
	manifest, err := sw.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	meta, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	msum := sha256.Sum256(manifest)
	meta.ManifestSHA256 = hex.EncodeToString(msum[:])
	meta.Files.Store, meta.Files.Index = layout.StoreObjects, layout.FileIndex
	metaJSON, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		key  string
		data []byte
	}{{layout.FileIndex, buf.Bytes()}, {layout.FileSums, manifest}, {layout.FileMetadata, metaJSON}} {
		if _, err := dst.Put(ctx, name+"/"+f.key, bytes.NewReader(f.data), storage.Object{Mode: 0o600}); err != nil {
			t.Fatal(err)
		}
	}
	return name, index
}

func copyObject(ctx context.Context, src, dst *storage.Bucket, from, to string) error {
	r, obj, err := src.Open(ctx, from)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = dst.Put(ctx, to, r, obj)
	return err
}
