package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/webnovel/webnovel-backup/internal/archive"
	"github.com/webnovel/webnovel-backup/internal/layout"
)

// now is the clock of the filesystem tests; names are read in UTC.
var now = time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)

func metadataJSON(t *testing.T, ts time.Time, status string, rows int64) []byte {
	t.Helper()
	m := &layout.Metadata{
		BackupTimestamp: ts, RunID: "run-" + ts.Format("0102"), Status: status,
		BackupOptions: layout.BackupOptions{IncludeFiles: true},
		Models:        []layout.ModelEntry{{Label: "books.Book", File: "db_books_book.json", Rows: rows}},
		Files:         layout.FilesSummary{Count: 2, Bytes: 10},
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writeTree writes files (relative path -> content) under dir, all modified at mtime.
func writeTree(t *testing.T, dir string, files map[string][]byte, mtime time.Time) {
	t.Helper()
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

// backupFiles is a complete backup's content.
func backupFiles(t *testing.T, ts time.Time, status string, rows int64) map[string][]byte {
	t.Helper()
	return map[string][]byte{
		"db_books_book.json":       []byte("[]\n"),
		"files/content/a.txt":      []byte("hello"),
		"files/images/b.png":       []byte("12345"),
		layout.FileMetadata:        metadataJSON(t, ts, status, rows),
		"SHA256SUMS":               []byte(""),
		"restore.sh":               []byte("#!/bin/sh\n"),
		"files/media/nested/c.bin": []byte("x"),
	}
}

// archiveOf returns a tar.gz of a complete backup taken at ts, built from parts as a backup
// builds one.
func archiveOf(t *testing.T, ts time.Time, rows int64) []byte {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, backupFiles(t, ts, layout.StatusComplete, rows), ts)
	var buf bytes.Buffer
	if _, err := archive.WriteHead(t.Context(), &buf, archive.Gzip, src, layout.Name(ts), nil); err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteEnd(&buf, archive.Gzip); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ts(s string) time.Time {
	t, err := time.ParseInLocation("20060102_150405", s, time.UTC)
	if err != nil {
		panic(err)
	}
	return t
}

// destination writes a backup folder with every kind of entry and returns its path.
func destination(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	old := ts("20240610_021000")
	writeTree(t, filepath.Join(dir, "backup_20240630_020000"), backupFiles(t, ts("20240630_020000"), layout.StatusComplete, 7), ts("20240630_020500"))
	writeTree(t, filepath.Join(dir, "backup_20240628_020000"), backupFiles(t, ts("20240628_020000"), layout.StatusComplete, 5), ts("20240628_020500"))
	// Written by the Python command: no status, no format_version.
	py, err := os.ReadFile("../layout/testdata/python_metadata.json")
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(dir, "backup_20240501_020000"), map[string][]byte{layout.FileMetadata: py, "db_books_book.json": []byte("[]")}, ts("20240501_020500"))
	good := archiveOf(t, ts("20240629_020000"), 9)
	truncated := archiveOf(t, ts("20240628_140000"), 3)
	writeTree(t, dir, map[string][]byte{
		"backup_20240629_020000.tar.gz": good,
		"backup_20240628_140000.tar.gz": truncated[:len(truncated)/2],
		"notes.txt":                     []byte("not a backup"),
		"backup_20240101_000000":        []byte("a file named like a folder backup"),
	}, ts("20240629_020500"))
	// Incomplete: old without metadata, old with a failed status, young, and an empty claim.
	writeTree(t, filepath.Join(dir, "backup_20240610_020000"), map[string][]byte{"db_books_book.json": []byte("[]")}, old)
	writeTree(t, filepath.Join(dir, "backup_20240620_020000"), map[string][]byte{layout.FileMetadata: metadataJSON(t, ts("20240620_020000"), "failed", 1)}, ts("20240620_020500"))
	writeTree(t, filepath.Join(dir, "backup_20240701_020000"), map[string][]byte{"db_books_book.json": []byte("[]")}, ts("20240701_020500"))
	empty := filepath.Join(dir, "backup_20240615_020000")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(empty, old, old)
	// A run abandoned weeks ago (no owner record): removed only with --prune-incomplete.
	writeTree(t, filepath.Join(dir, layout.StagingPrefix+"run7"), map[string][]byte{"db_books_book.json": []byte("[]")}, ts("20240501_000000"))
	return dir
}

type listed struct {
	name   string
	kind   Kind
	status Status
	rows   int64
}

func summary(bs []Backup) []listed {
	var out []listed
	for _, b := range bs {
		out = append(out, listed{b.Name, b.Kind, b.Status, b.Rows})
	}
	return out
}

func TestList(t *testing.T) {
	dir := destination(t)
	ctx := context.Background()
	d, err := OpenDestination(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, read := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReadArchives=%v", read), func(t *testing.T) {
			bs, err := d.List(ctx, ListOptions{Location: time.UTC, ReadArchives: read})
			if err != nil {
				t.Fatal(err)
			}
			// A truncated archive is incomplete either way: its end is missing.
			goodRows, truncStatus := int64(0), StatusIncomplete
			if read {
				goodRows = 9
			}
			want := []listed{
				{"backup_20240701_020000", KindFolder, StatusIncomplete, 0},
				{"backup_20240630_020000", KindFolder, StatusComplete, 7},
				{"backup_20240629_020000.tar.gz", KindArchive, StatusComplete, goodRows},
				{"backup_20240628_140000.tar.gz", KindArchive, truncStatus, 0},
				{"backup_20240628_020000", KindFolder, StatusComplete, 5},
				{"backup_20240620_020000", KindFolder, StatusIncomplete, 1},
				{"backup_20240615_020000", KindFolder, StatusIncomplete, 0},
				{"backup_20240610_020000", KindFolder, StatusIncomplete, 0},
				{"backup_20240501_020000", KindFolder, StatusComplete, 0},
				{".wnb-staging-run7", KindStaging, StatusAbandoned, 0},
			}
			if got := summary(bs); !slices.Equal(got, want) {
				t.Errorf("listed:\n%v\nwant:\n%v", got, want)
			}
			for _, b := range bs {
				switch b.Name {
				case "backup_20240630_020000":
					if b.Files != 2 || b.Objects != 7 || b.Size == 0 || b.RunID != "run-0630" {
						t.Errorf("complete folder: %+v", b)
					}
				case "backup_20240629_020000.tar.gz":
					if fi, _ := os.Stat(filepath.Join(dir, b.Name)); b.Size != fi.Size() {
						t.Errorf("archive size %d, want %d", b.Size, fi.Size())
					}
				case "backup_20240628_140000.tar.gz":
					if b.Problem == "" {
						t.Error("truncated archive: no problem given")
					}
				case "backup_20240620_020000":
					if !strings.Contains(b.Problem, `"failed"`) {
						t.Errorf("failed status problem %q", b.Problem)
					}
				}
			}
		})
	}
}

func TestOpenDestinationMissing(t *testing.T) {
	if _, err := OpenDestination(context.Background(), filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("a missing destination opened")
	}
}

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	return ns
}

func TestPrune(t *testing.T) {
	tests := []struct {
		name            string
		policy          Policy
		pruneIncomplete bool
		removed         []string
	}{
		// Prune reads archives: the truncated one is incomplete, so no rule counts it.
		{"last 2", Policy{Last: 2}, false, []string{"backup_20240628_020000", "backup_20240501_020000"}},
		{"last 2 and old incomplete", Policy{Last: 2}, true, []string{
			"backup_20240628_140000.tar.gz", "backup_20240628_020000", "backup_20240620_020000",
			"backup_20240615_020000", "backup_20240610_020000", "backup_20240501_020000", ".wnb-staging-run7"}},
		{"monthly 2", Policy{Monthly: 2}, false, []string{"backup_20240629_020000.tar.gz", "backup_20240628_020000"}},
		{"daily 30 keeps every complete day", Policy{Daily: 30}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := destination(t)
			before := entries(t, dir)
			d, err := OpenDestination(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			o := PruneOptions{
				DecideOptions: DecideOptions{Now: now, PruneIncomplete: tt.pruneIncomplete},
				ListOptions:   ListOptions{Location: time.UTC},
				DryRun:        true,
			}
			res, err := Prune(ctx, d, tt.policy, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := entries(t, dir); !slices.Equal(got, before) {
				t.Fatalf("dry run changed the destination:\n%v\n%v", before, got)
			}
			if len(res.Removed) != 0 {
				t.Errorf("dry run reports removed %v", res.Removed)
			}
			var wouldRemove []string
			for _, dec := range res.Decisions {
				if !dec.Keep {
					wouldRemove = append(wouldRemove, dec.Backup.Name)
				}
			}
			if !slices.Equal(wouldRemove, tt.removed) {
				t.Errorf("dry run would remove %v, want %v", wouldRemove, tt.removed)
			}

			o.DryRun = false
			res, err = Prune(ctx, d, tt.policy, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Removed, tt.removed) {
				t.Errorf("removed %v, want %v", res.Removed, tt.removed)
			}
			var want []string
			for _, n := range before {
				if !slices.Contains(tt.removed, n) {
					want = append(want, n)
				}
			}
			if got := entries(t, dir); !slices.Equal(got, want) {
				t.Errorf("left:\n%v\nwant:\n%v", got, want)
			}
		})
	}
}

// s3Env points the AWS SDK at test credentials and away from the host's configuration.
func s3Env(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_SESSION_TOKEN": "",
		"AWS_REGION": "us-east-1", "AWS_PROFILE": "", "AWS_CONFIG_FILE": filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"), "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "", "AWS_CA_BUNDLE": "",
	} {
		t.Setenv(k, v)
	}
}

// On S3 a folder backup is every object under its prefix, and nothing else.
func TestPruneS3(t *testing.T) {
	s3Env(t)
	mem := s3mem.New()
	if err := mem.CreateBucket("backups"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(mem, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	defer srv.Close()
	put := func(key string, data []byte) {
		t.Helper()
		if _, err := mem.PutObject("backups", key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"20240630_020000", "20240628_020000", "20240627_020000"} {
		for rel, data := range backupFiles(t, ts(name), layout.StatusComplete, 4) {
			put("nightly/backup_"+name+"/"+rel, data)
		}
	}
	put("nightly/backup_20240629_020000.tar.gz", archiveOf(t, ts("20240629_020000"), 9))
	// Neighbours sharing a text prefix with a pruned backup, and a run in progress.
	put("nightly/backup_20240627_020000-2/db_books_book.json", []byte("[]"))
	put("nightly/"+layout.StagingPrefix+"run9/db_books_book.json", []byte("[]"))
	put("elsewhere/backup_20240101_020000/backup_metadata.json", metadataJSON(t, ts("20240101_020000"), layout.StatusComplete, 1))

	ctx := context.Background()
	loc := fmt.Sprintf("s3://backups/nightly?endpoint=%s&path_style=true&region=us-east-1", url.QueryEscape(srv.URL))
	d, err := OpenDestination(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bs, err := d.List(ctx, ListOptions{Location: time.UTC, ReadArchives: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []listed{
		{".wnb-staging-run9", KindStaging, StatusInProgress, 0}, // written just now: the newest
		{"backup_20240630_020000", KindFolder, StatusComplete, 4},
		{"backup_20240629_020000.tar.gz", KindArchive, StatusComplete, 9},
		{"backup_20240628_020000", KindFolder, StatusComplete, 4},
		{"backup_20240627_020000-2", KindFolder, StatusIncomplete, 0},
		{"backup_20240627_020000", KindFolder, StatusComplete, 4},
	}
	if got := summary(bs); !slices.Equal(got, want) {
		t.Fatalf("listed:\n%v\nwant:\n%v", got, want)
	}
	res, err := Prune(ctx, d, Policy{Last: 1}, PruneOptions{DecideOptions: DecideOptions{Now: now}, ListOptions: ListOptions{Location: time.UTC}})
	if err != nil {
		t.Fatal(err)
	}
	if wantRemoved := []string{"backup_20240629_020000.tar.gz", "backup_20240628_020000", "backup_20240627_020000"}; !slices.Equal(res.Removed, wantRemoved) {
		t.Errorf("removed %v, want %v", res.Removed, wantRemoved)
	}
	list, err := mem.ListBucket("backups", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range list.Contents {
		if !strings.HasPrefix(c.Key, "nightly/backup_20240630_020000/") {
			keys = append(keys, c.Key)
		}
	}
	sort.Strings(keys)
	wantKeys := []string{
		"elsewhere/backup_20240101_020000/backup_metadata.json",
		"nightly/" + layout.StagingPrefix + "run9/db_books_book.json",
		"nightly/backup_20240627_020000-2/db_books_book.json",
	}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("left in the bucket (besides the kept backup):\n%v\nwant:\n%v", keys, wantKeys)
	}
}

// Archives are untrusted: reading one up to its metadata never panics.
func FuzzArchiveMetadata(f *testing.F) {
	var buf bytes.Buffer
	src := f.TempDir()
	os.WriteFile(filepath.Join(src, layout.FileMetadata), []byte(`{"backup_timestamp":"2024-12-01T14:30:22"}`), 0o644)
	if _, err := archive.Write(context.Background(), &buf, src, "backup_20241201_143022"); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:buf.Len()/2])
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		meta, err := archiveMetadata(context.Background(), bytes.NewReader(data))
		if err == nil && meta == nil {
			t.Error("no error and no metadata")
		}
	})
}

// TestPruneKeepsWhatAReaderHolds: a backup folder or archive the policy does not keep, held by
// a reader (a restore, a copy, a verify), is kept and named, not half-deleted under it, and
// goes in the next prune once let go; a reader that comes while a prune deletes one is told.
func TestPruneKeepsWhatAReaderHolds(t *testing.T) {
	ctx := context.Background()
	dir := destination(t)
	d, err := OpenDestination(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	o := PruneOptions{DecideOptions: DecideOptions{Now: now}, ListOptions: ListOptions{Location: time.UTC}}
	held := []string{"backup_20240629_020000.tar.gz", "backup_20240628_020000"} // newest first, as prune goes
	var releases []func()
	for _, name := range held {
		release, err := layout.Hold(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	res, err := Prune(ctx, d, Policy{Last: 1}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.InUse, held) || slices.ContainsFunc(res.Removed, func(n string) bool { return slices.Contains(held, n) }) {
		t.Fatalf("in use %v, removed %v; want %v kept as in use", res.InUse, res.Removed, held)
	}
	for _, name := range held {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("held backup %s: %v", name, err)
		}
	}
	for _, release := range releases {
		release()
	}
	res, err = Prune(ctx, d, Policy{Last: 1}, o)
	if err != nil || len(res.InUse) != 0 || !slices.Equal(res.Removed, held) {
		t.Fatalf("prune once let go: removed %v, in use %v (%v); want %v removed", res.Removed, res.InUse, err, held)
	}

	claim, err := layout.Claim(filepath.Join(dir, "backup_20240630_020000"))
	if err != nil {
		t.Fatal(err)
	}
	defer claim()
	if _, err := layout.Hold(filepath.Join(dir, "backup_20240630_020000")); !errors.Is(err, layout.ErrBeingPruned) {
		t.Fatalf("a reader of a backup being deleted: %v; want ErrBeingPruned", err)
	}
}
