// Package storagetest is a conformance suite for storage drivers: every driver behind
// storage.Bucket must pass Run, so callers can rely on the same behaviour everywhere.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/storage"
)

// LargeSize is the size of the suite's large object. Drivers that split objects into parts
// should be opened with parts well below it (e.g. 64 KiB) so that several parts are used.
const LargeSize = 1<<20 + 12345

// Run runs the suite. open returns a new, empty bucket for each subtest (it is called with
// the subtest's t, so cleanups belong to the subtest).
func Run(t *testing.T, open func(t *testing.T) *storage.Bucket) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b *storage.Bucket)
	}{
		{"Keys", testKeys},
		{"Walk", testWalk},
		{"Missing", testMissing},
		{"CreateCommit", testCreateCommit},
		{"CreateAbort", testCreateAbort},
		{"Overwrite", testOverwrite},
		{"Empty", testEmpty},
		{"ModeModTime", testModeModTime},
		{"Large", testLarge},
		{"RemoveAll", testRemoveAll},
		{"BadKeys", testBadKeys},
		{"ConcurrentWriters", testConcurrentWriters},
		{"SHA256", testSHA256},
		{"ErrorCodes", testErrorCodes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	t.Run("CopyFrom", func(t *testing.T) { testCopyFrom(t, open(t), open(t)) })
}

// Content returns n deterministic bytes that differ for each seed.
func Content(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

// Put writes data under key, failing the test on error.
func Put(t *testing.T, b *storage.Bucket, key string, data []byte, attrs storage.Object) {
	t.Helper()
	if _, err := b.Put(context.Background(), key, bytes.NewReader(data), attrs); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// Get reads key whole, failing the test on error.
func Get(t *testing.T, b *storage.Bucket, key string) ([]byte, storage.Object) {
	t.Helper()
	r, o, err := b.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data, o
}

// Keys lists every key under prefix in Walk's order.
func Keys(t *testing.T, b *storage.Bucket, prefix string) []string {
	t.Helper()
	var keys []string
	err := b.Walk(context.Background(), prefix, func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %q: %v", prefix, err)
	}
	return keys
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

var oddKeys = []string{
	"a.txt",
	"dir/sub/deep/er/and/deeper/still/z.bin",
	"unicode/章节/第一章.json",
	"spaces/a file with  spaces.txt",
	"punct/plus+and%25percent&amp;=?#.txt",
	"emoji/😀 ü é.png",
	"-leading-dash",
}

func testKeys(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	for i, k := range oddKeys {
		Put(t, b, k, Content(k, 100+i), storage.Object{})
	}
	for i, k := range oddKeys {
		data, o := Get(t, b, k)
		if !bytes.Equal(data, Content(k, 100+i)) {
			t.Errorf("%q: content differs", k)
		}
		if o.Key != k || o.Size != int64(100+i) {
			t.Errorf("%q: Open says key %q size %d", k, o.Key, o.Size)
		}
		st, err := b.Stat(ctx, k)
		if err != nil || st.Key != k || st.Size != int64(100+i) {
			t.Errorf("%q: Stat = %+v, %v", k, st, err)
		}
	}
	got := Keys(t, b, "")
	want := slices.Clone(oddKeys)
	slices.Sort(want)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if !slices.Equal(sorted, want) {
		t.Errorf("Walk = %q, want %q", got, want)
	}
}

func testWalk(t *testing.T, b *storage.Bucket) {
	keys := []string{"f/c2", "f/a", "f/c10", "f/b", "g/x/1", "g/x/2", "g/y", "gz", "h"}
	for _, k := range keys {
		Put(t, b, k, []byte(k), storage.Object{})
	}
	all := Keys(t, b, "")
	if len(all) != len(keys) {
		t.Fatalf("Walk = %q, want each of %q once", all, keys)
	}
	for range 3 {
		if again := Keys(t, b, ""); !slices.Equal(again, all) {
			t.Fatalf("Walk is not deterministic: %q then %q", all, again)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"f/", []string{"f/a", "f/b", "f/c10", "f/c2"}}, // files of one folder: lexical
		{"f/c", []string{"f/c10", "f/c2"}},
		{"g/", []string{"g/x/1", "g/x/2", "g/y"}},
		{"g/x/", []string{"g/x/1", "g/x/2"}},
		{"g/x/2", []string{"g/x/2"}},
		{"missing/", nil},
		{"missing", nil},
	} {
		if got := Keys(t, b, tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("Walk(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	// The walk reports sizes and times, and stops at the callback's error.
	stop := errors.New("stop")
	n := 0
	err := b.Walk(context.Background(), "", func(o storage.Object) error {
		if o.Size != int64(len(o.Key)) || o.ModTime.IsZero() {
			t.Errorf("Walk gave %+v", o)
		}
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Walk with a failing callback: %v after %d objects", err, n)
	}
}

func testMissing(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	Put(t, b, "present/x", []byte("x"), storage.Object{})
	for _, k := range []string{"nope", "present/nope", "deep/er/nope"} {
		if _, _, err := b.Open(ctx, k); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want ErrNotExist", k, err)
		}
		if _, err := b.Stat(ctx, k); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want ErrNotExist", k, err)
		}
		if err := b.Remove(ctx, k); err != nil {
			t.Errorf("Remove(%q) of a missing key = %v", k, err)
		}
	}
}

func testCreateCommit(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	w, err := b.Create(ctx, "c/obj", storage.Object{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	data := Content("cc", 5000)
	for chunk := range slices.Chunk(data, 777) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Stat(ctx, "c/obj"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("before Commit, Stat = %v, want ErrNotExist", err)
	}
	if keys := Keys(t, b, ""); len(keys) != 0 {
		t.Errorf("before Commit, Walk = %q", keys)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := Get(t, b, "c/obj"); !bytes.Equal(got, data) {
		t.Error("committed content differs")
	}
	if err := w.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit = %v", err)
	}
	if got, _ := Get(t, b, "c/obj"); !bytes.Equal(got, data) {
		t.Error("Abort after Commit changed the object")
	}
}

func testCreateAbort(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	Put(t, b, "keep", []byte("old"), storage.Object{})
	for _, k := range []string{"a/aborted", "keep"} {
		w, err := b.Create(ctx, k, storage.Object{})
		if err != nil {
			t.Fatal(err)
		}
		// Enough to start a multipart upload where parts are small.
		if _, err := w.Write(Content(k, 300<<10)); err != nil {
			t.Fatal(err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		if err := w.Commit(); err == nil {
			t.Error("Commit after Abort succeeded")
		}
	}
	if _, err := b.Stat(ctx, "a/aborted"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("after Abort, Stat = %v, want ErrNotExist", err)
	}
	if got, _ := Get(t, b, "keep"); string(got) != "old" {
		t.Errorf("an aborted overwrite changed the object to %d bytes", len(got))
	}
	if keys := Keys(t, b, ""); !slices.Equal(keys, []string{"keep"}) {
		t.Errorf("after Abort, Walk = %q", keys)
	}
}

func testOverwrite(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	Put(t, b, "o", []byte("first version, long"), storage.Object{})
	Put(t, b, "o", []byte("second"), storage.Object{})
	if got, o := Get(t, b, "o"); string(got) != "second" || o.Size != 6 {
		t.Errorf("after overwrite: %q (size %d)", got, o.Size)
	}
	if keys := Keys(t, b, ""); !slices.Equal(keys, []string{"o"}) {
		t.Errorf("after overwrite, Walk = %q", keys)
	}
	if err := b.Remove(ctx, "o"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "o"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("after Remove, Stat = %v", err)
	}
}

func testEmpty(t *testing.T, b *storage.Bucket) {
	Put(t, b, "empty", nil, storage.Object{})
	if got, o := Get(t, b, "empty"); len(got) != 0 || o.Size != 0 {
		t.Errorf("empty object: %d bytes, size %d", len(got), o.Size)
	}
}

func testModeModTime(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 500_000_000, time.UTC)
	for _, mode := range []fs.FileMode{0o600, 0o644, 0o755} {
		key := fmt.Sprintf("m/%o", mode)
		Put(t, b, key, []byte("x"), storage.Object{Mode: mode, ModTime: mtime})
		st, err := b.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		_, o := Get(t, b, key)
		for name, got := range map[string]storage.Object{"Stat": st, "Open": o} {
			if got.Mode != mode || !got.ModTime.Equal(mtime) {
				t.Errorf("%s(%s) = mode %o mtime %v, want %o %v", name, key, got.Mode, got.ModTime, mode, mtime)
			}
		}
	}
	// Without attributes the object still has a time.
	Put(t, b, "m/none", []byte("x"), storage.Object{})
	if st, err := b.Stat(ctx, "m/none"); err != nil || st.ModTime.IsZero() || time.Since(st.ModTime) > time.Hour {
		t.Errorf("Stat without attributes = %+v, %v", st, err)
	}
}

// trickle hands out data in odd-sized pieces, as a network stream would.
type trickle struct {
	data []byte
	n    int
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.n++
	k := min(len(p), len(r.data), 1+r.n*7919%70000)
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

func testLarge(t *testing.T, b *storage.Bucket) {
	data := Content("large", LargeSize)
	n, err := b.Put(context.Background(), "big/object.bin", &trickle{data: data}, storage.Object{Mode: 0o640})
	if err != nil || n != LargeSize {
		t.Fatalf("Put = %d, %v", n, err)
	}
	r, o, err := b.Open(context.Background(), "big/object.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if o.Size != LargeSize || o.Mode != 0o640 {
		t.Errorf("Open says size %d mode %o", o.Size, o.Mode)
	}
	// Read in odd sizes too, across part boundaries.
	var got bytes.Buffer
	buf := make([]byte, 10007)
	for {
		k, err := r.Read(buf[:1+got.Len()%len(buf)])
		got.Write(buf[:k])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read at %d: %v", got.Len(), err)
		}
	}
	if got.Len() != len(data) || sum(got.Bytes()) != sum(data) {
		t.Fatalf("read back %d bytes (sha %s), want %d (sha %s)", got.Len(), sum(got.Bytes()), len(data), sum(data))
	}
}

func testRemoveAll(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	for _, k := range []string{"rm/a", "rm/b/c", "rm/b/d/e", "rmx", "rm2/a", "other/rm/a"} {
		Put(t, b, k, []byte(k), storage.Object{})
	}
	if err := b.RemoveAll(ctx, "rm"); err != nil {
		t.Fatal(err)
	}
	want := []string{"other/rm/a", "rm2/a", "rmx"}
	if got := Keys(t, b, ""); !sameSet(got, want) {
		t.Errorf("after RemoveAll(rm): %q, want %q", got, want)
	}
	if err := b.RemoveAll(ctx, "rm2/"); err != nil {
		t.Fatal(err)
	}
	if err := b.RemoveAll(ctx, "nothing/here/"); err != nil {
		t.Errorf("RemoveAll of a missing prefix = %v", err)
	}
	want = []string{"other/rm/a", "rmx"}
	if got := Keys(t, b, ""); !sameSet(got, want) {
		t.Errorf("after RemoveAll(rm2/): %q, want %q", got, want)
	}
	for _, p := range []string{"", "/", "../", "a/../.."} {
		if err := b.RemoveAll(ctx, p); err == nil {
			t.Errorf("RemoveAll(%q) succeeded", p)
		}
	}
	if got := Keys(t, b, ""); !sameSet(got, want) {
		t.Errorf("refused RemoveAll calls removed something: %q", got)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func testBadKeys(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	// A backslash is part of a name (a local file system holds it), not a bad key.
	for _, k := range []string{"", "/abs", "..", "../x", "a/../b", "a/./b", "./a", "a//b", "a/", "a\x00b"} {
		if w, err := b.Create(ctx, k, storage.Object{}); err == nil {
			w.Abort()
			t.Errorf("Create(%q) succeeded", k)
		}
		if _, _, err := b.Open(ctx, k); err == nil || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want a bad-key error", k, err)
		}
		if _, err := b.Stat(ctx, k); err == nil || errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(%q) = %v, want a bad-key error", k, err)
		}
		if err := b.Remove(ctx, k); err == nil {
			t.Errorf("Remove(%q) succeeded", k)
		}
		if _, err := b.Put(ctx, k, bytes.NewReader(nil), storage.Object{}); err == nil {
			t.Errorf("Put(%q) succeeded", k)
		}
	}
	if err := b.Walk(ctx, "../", func(storage.Object) error { return nil }); err == nil {
		t.Error("Walk(../) succeeded")
	}
	if keys := Keys(t, b, ""); len(keys) != 0 {
		t.Errorf("bad keys left objects: %q", keys)
	}
}

func testConcurrentWriters(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("cw/own-%d", i)
			if _, err := b.Put(ctx, key, bytes.NewReader(Content(key, 200<<10)), storage.Object{}); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			// Everyone writes the same key: the survivor is one whole version.
			seed := fmt.Sprintf("shared-%d", i)
			if _, err := b.Put(ctx, "cw/shared", bytes.NewReader(Content(seed, 100<<10+i)), storage.Object{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range writers {
		key := fmt.Sprintf("cw/own-%d", i)
		if got, _ := Get(t, b, key); !bytes.Equal(got, Content(key, 200<<10)) {
			t.Errorf("%s differs", key)
		}
	}
	got, _ := Get(t, b, "cw/shared")
	i := len(got) - 100<<10
	if i < 0 || i >= writers || !bytes.Equal(got, Content(fmt.Sprintf("shared-%d", i), len(got))) {
		t.Errorf("cw/shared holds %d bytes that are no writer's whole version", len(got))
	}
	if keys := Keys(t, b, ""); len(keys) != writers+1 {
		t.Errorf("after concurrent writes, Walk = %q", keys)
	}
}

func testSHA256(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	for _, n := range []int{0, 1000, LargeSize} {
		key := fmt.Sprintf("sum/%d", n)
		data := Content(key, n)
		Put(t, b, key, data, storage.Object{})
		got, err := b.SHA256(ctx, key)
		if err != nil || got != sum(data) {
			t.Errorf("SHA256(%s) = %s, %v; want %s", key, got, err, sum(data))
		}
	}
	if _, err := b.SHA256(ctx, "sum/missing"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("SHA256 of a missing key = %v, want ErrNotExist", err)
	}
}

func testCopyFrom(t *testing.T, src, dst *storage.Bucket) {
	ctx := context.Background()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	data := Content("copy", 3000)
	Put(t, src, "from/x y", data, storage.Object{Mode: 0o600, ModTime: mtime})
	o, err := dst.CopyFrom(ctx, src, "from/x y", "to/x y")
	if errors.Is(err, storage.ErrNoServerSideCopy) {
		if keys := Keys(t, dst, ""); len(keys) != 0 {
			t.Errorf("a refused copy left %q", keys)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if o.Key != "to/x y" || o.Size != int64(len(data)) || o.Mode != 0o600 || !o.ModTime.Equal(mtime) {
		t.Errorf("CopyFrom = %+v", o)
	}
	got, st := Get(t, dst, "to/x y")
	if !bytes.Equal(got, data) || st.Mode != 0o600 || !st.ModTime.Equal(mtime) {
		t.Errorf("copy: %d bytes, mode %o, mtime %v", len(got), st.Mode, st.ModTime)
	}
	if _, err := dst.CopyFrom(ctx, src, "from/missing", "to/missing"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("CopyFrom of a missing key = %v, want ErrNotExist", err)
	}
}

// testErrorCodes checks the portable classes of the errors every driver can be made to give:
// a missing key, a bad key, and no error.
func testErrorCodes(t *testing.T, b *storage.Bucket) {
	ctx := context.Background()
	Put(t, b, "present/x", []byte("x"), storage.Object{})
	_, _, openErr := b.Open(ctx, "present/missing")
	_, statErr := b.Stat(ctx, "missing")
	_, sumErr := b.SHA256(ctx, "deep/missing")
	_, badErr := b.Stat(ctx, "../escape")
	_, createErr := b.Create(ctx, "/abs", storage.Object{})
	_, okErr := b.Stat(ctx, "present/x")
	for _, tc := range []struct {
		what string
		err  error
		want storage.Code
	}{
		{"Open of a missing key", openErr, storage.CodeNotFound},
		{"Stat of a missing key", statErr, storage.CodeNotFound},
		{"SHA256 of a missing key", sumErr, storage.CodeNotFound},
		{"Stat of a bad key", badErr, storage.CodeInvalid},
		{"Create of a bad key", createErr, storage.CodeInvalid},
		{"RemoveAll of everything", b.RemoveAll(ctx, ""), storage.CodeInvalid},
		{"Stat of a present key", okErr, storage.CodeOK},
		{"a wrapped missing key", fmt.Errorf("task: %w", statErr), storage.CodeNotFound},
	} {
		if got := storage.ErrorCode(tc.err); got != tc.want {
			t.Errorf("%s: ErrorCode(%v) = %s, want %s", tc.what, tc.err, got, tc.want)
		}
	}
}
