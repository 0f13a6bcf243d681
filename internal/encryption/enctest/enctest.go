// Package enctest turns ordinary backup folders into age-encrypted ones for tests, the way an
// encrypted backup is written: every fixture and file stored as NAME.age, a plainsums/<run>.age
// manifest of plaintext sums, SHA256SUMS over the stored bytes, and the metadata's models,
// file index and encryption fields rewritten to match.
package enctest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/webnovel/webnovel-backup/internal/encryption"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/layout/objtest"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// Key is a test's age key pair.
type Key struct {
	ID         *age.X25519Identity
	Identities *encryption.Identities
	Recipients *encryption.Recipients
	// File is an identity file holding the key, as age-keygen writes it.
	File string
}

// NewKey makes a key and its identity file in a test folder.
func NewKey(t testing.TB) Key {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := encryption.ParseRecipients([]string{id.Recipient().String()}, "test")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(file, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Key{ID: id, Identities: encryption.IdentitiesOf(id), Recipients: rc, File: file}
}

// Encrypt encrypts the backup folder dir in place to k. With passphrase set, it is a
// passphrase backup: k is sealed into backup_key.age with it. It returns the plaintext size
// of each stored file (files/NAME.age → bytes).
func Encrypt(t testing.TB, dir string, k Key, passphrase string) map[string]int64 {
	t.Helper()
	meta, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	plain := map[string]string{} // plaintext path → sum
	sizes := map[string]int64{}
	for i, m := range meta.Models {
		plain[m.File], _ = encryptFile(t, filepath.Join(dir, m.File), k)
		meta.Models[i].File = m.File + encryption.Ext
		meta.Models[i].SHA256, meta.Models[i].Bytes = hashFile(t, filepath.Join(dir, meta.Models[i].File))
	}
	filepath.WalkDir(filepath.Join(dir, layout.FilesDir), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		var n int64
		plain[rel], n = encryptFile(t, p, k)
		sizes[rel+encryption.Ext] = n
		return nil
	})
	seg := layout.PlainSumsDir + "/" + meta.RunID + encryption.Ext
	writeSegment(t, filepath.Join(dir, filepath.FromSlash(seg)), plain, k)
	meta.Encryption = &layout.Encryption{Format: encryption.Format, Mode: encryption.ModeRecipients,
		Recipients: k.Recipients.Public(), PlainSums: []string{seg}}
	if passphrase != "" {
		sealed, err := encryption.SealKey(k.ID, passphrase)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, encryption.KeyFile), sealed)
		meta.Encryption.Mode, meta.Encryption.Key = encryption.ModePassphrase, encryption.KeyFile
	}
	if meta.Files.Index != "" {
		rewriteIndex(t, filepath.Join(dir, meta.Files.Index), func(e *messages.FileEntry) {
			e.Path += encryption.Ext
			e.SHA256, _ = hashFile(t, filepath.Join(dir, filepath.FromSlash(e.Path)))
		})
	}
	resign(t, dir, meta)
	return sizes
}

// encryptFile replaces p by p.age, returning the plaintext's sum and size.
func encryptFile(t testing.TB, p string, k Key) (string, int64) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p+encryption.Ext, Seal(t, data, k))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), int64(len(data))
}

// Seal encrypts data to k, as a backup stores a file.
func Seal(t testing.TB, data []byte, k Key) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := k.Recipients.Encrypt(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeSegment writes the manifest of plaintext sums, sorted by path, encrypted to k.
func writeSegment(t testing.TB, p string, plain map[string]string, k Key) {
	t.Helper()
	paths := make([]string, 0, len(plain))
	for path := range plain {
		paths = append(paths, path)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, path := range paths {
		b.WriteString(plain[path] + "  " + path + "\n")
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, Seal(t, []byte(b.String()), k))
}

// rewriteIndex applies edit to every entry of the (maybe gzipped) file index at p and writes
// it back sorted by path, as it was.
func rewriteIndex(t testing.TB, p string, edit func(e *messages.FileEntry)) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var entries []messages.FileEntry
	err = messages.ReadFileList(layout.DecompressIndex(f), func(e messages.FileEntry) error {
		edit(&e)
		entries = append(entries, e)
		return nil
	})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if strings.HasSuffix(p, ".gz") {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	lw := messages.NewFileListWriter(w)
	for _, e := range entries {
		if err := lw.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	writeFile(t, p, buf.Bytes())
}

// resign writes SHA256SUMS over everything the folder holds and the metadata with its
// manifest_sha256.
func resign(t testing.TB, dir string, meta *layout.Metadata) {
	t.Helper()
	sums, err := layout.SumTree(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if meta.ManifestSHA256, err = sums.WriteFile(dir); err != nil {
		t.Fatal(err)
	}
	if err := layout.WriteMetadata(dir, meta); err != nil {
		t.Fatal(err)
	}
}

// ObjectStore stores the encrypted backup folder dir as an object-store backup under root
// (see objtest.Convert), its file index recording plaintext sizes (sizes, from Encrypt) and
// storage keys without .age, as an encrypted backup's index does. It returns the backup's name.
func ObjectStore(t testing.TB, dir, root string, sizes map[string]int64) string {
	t.Helper()
	name, _ := objtest.Convert(t, dir, root)
	ctx := context.Background()
	b, err := storage.Open(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	local := filepath.Join(t.TempDir(), name)
	for _, key := range []string{layout.FileIndex, layout.FileSums, layout.FileMetadata} {
		r, _, err := b.Open(ctx, name+"/"+key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(local, key), data)
	}
	rewriteIndex(t, filepath.Join(local, layout.FileIndex), func(e *messages.FileEntry) {
		e.Size, e.Key = sizes[e.Path], strings.TrimSuffix(e.Key, encryption.Ext)
	})
	sums, err := os.ReadFile(filepath.Join(local, layout.FileSums))
	if err != nil {
		t.Fatal(err)
	}
	isum, _ := hashFile(t, filepath.Join(local, layout.FileIndex))
	var out []string
	for _, l := range strings.SplitAfter(string(sums), "\n") {
		if strings.HasSuffix(l, "  "+layout.FileIndex+"\n") {
			l = isum + "  " + layout.FileIndex + "\n"
		}
		out = append(out, l)
	}
	manifest := []byte(strings.Join(out, ""))
	meta, err := layout.ReadMetadata(local)
	if err != nil {
		t.Fatal(err)
	}
	msum := sha256.Sum256(manifest)
	meta.ManifestSHA256 = hex.EncodeToString(msum[:])
	metaJSON, err := meta.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for key, data := range map[string][]byte{layout.FileIndex: readFile(t, filepath.Join(local, layout.FileIndex)), layout.FileSums: manifest} {
		put(t, b, name+"/"+key, data)
	}
	put(t, b, name+"/"+layout.FileMetadata, metaJSON) // last, as a publish does
	return name
}

func put(t testing.TB, b *storage.Bucket, key string, data []byte) {
	t.Helper()
	if _, err := b.Put(context.Background(), key, bytes.NewReader(data), storage.Object{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
}

func hashFile(t testing.TB, p string) (string, int64) {
	t.Helper()
	sum, n, err := layout.HashFile(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return sum, n
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Resign rewrites the backup folder's SHA256SUMS, the models' sums and manifest_sha256 after
// a test changed its bytes, so that only decryption can tell.
func Resign(t testing.TB, dir string) {
	t.Helper()
	meta, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range meta.Models {
		meta.Models[i].SHA256, meta.Models[i].Bytes = hashFile(t, filepath.Join(dir, m.File))
	}
	resign(t, dir, meta)
}

// Segment decrypts the backup's newest manifest of plaintext sums, lets edit change its
// text, and writes it back encrypted to k (not re-signed).
func Segment(t testing.TB, dir string, k Key, edit func(string) string) {
	t.Helper()
	meta, err := layout.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	segs := meta.Encryption.PlainSums
	p := filepath.Join(dir, filepath.FromSlash(segs[len(segs)-1]))
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := k.Identities.Decrypt(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, Seal(t, []byte(edit(string(data))), k))
}
