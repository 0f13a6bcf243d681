package retention

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

func hexSum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// objectDest is an S3 destination holding an object store: put writes a key.
type objectDest struct {
	mem *s3mem.Backend
	url string
	// denied is a key whose GET the server refuses (403), as a bucket policy or an expired
	// credential would.
	denied atomic.Value
}

func newObjectDest(t *testing.T) *objectDest {
	t.Helper()
	s3Env(t)
	mem := s3mem.New()
	if err := mem.CreateBucket("backups"); err != nil {
		t.Fatal(err)
	}
	d := &objectDest{mem: mem}
	d.denied.Store("")
	s3 := gofakes3.New(mem, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key := d.denied.Load().(string); key != "" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/nightly/"+key) {
			http.Error(w, "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>", http.StatusForbidden)
			return
		}
		s3.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d.url = "s3://backups/nightly?endpoint=" + url.QueryEscape(srv.URL) + "&path_style=true&region=us-east-1"
	return d
}

func (d *objectDest) put(t *testing.T, key string, data []byte) {
	t.Helper()
	if _, err := d.mem.PutObject("backups", "nightly/"+key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

func (d *objectDest) has(key string) bool {
	_, err := d.mem.HeadObject("backups", "nightly/"+key)
	return err == nil
}

// fileList is the JSON lines of entries naming sums.
func fileList(sums ...string) []byte {
	var b bytes.Buffer
	w := messages.NewFileListWriter(&b)
	for i, s := range sums {
		w.Add(messages.FileEntry{Path: "files/f" + string(rune('a'+i)), SHA256: s, Stored: layout.ObjectKey(s)})
	}
	w.Flush()
	return b.Bytes()
}

// objectBackup writes a complete object-store backup whose index names sums (no index when
// sums is nil).
func (d *objectDest) objectBackup(t *testing.T, name string, sums []string) {
	t.Helper()
	m := &layout.Metadata{BackupTimestamp: ts(strings.TrimPrefix(name, "backup_")), Status: layout.StatusComplete,
		BackupOptions: layout.BackupOptions{IncludeFiles: true},
		Files:         layout.FilesSummary{Index: layout.FileIndex, Store: layout.StoreObjects}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d.put(t, name+"/"+layout.FileMetadata, data)
	if sums != nil {
		d.put(t, name+"/"+layout.FileIndex, fileList(sums...))
	}
}

// The sweep deletes only the objects no complete backup's index and no staging area's key
// list or sums names; it never touches a key under objects/ that is not a content it stores,
// nor anything when a complete backup's index cannot be read, nor a destination without an
// object store; a dry run deletes nothing; a grace period keeps young objects.
func TestSweepObjects(t *testing.T) {
	a, b, c, dd, e := hexSum("a"), hexSum("b"), hexSum("c"), hexSum("d"), hexSum("e")
	tests := []struct {
		name      string
		setup     func(t *testing.T, d *objectDest)
		o         SweepOptions
		wantErr   string
		wantGone  []string // sums deleted
		wantKept  []string
		wantSwept int64
		wantLive  int64 // 0: not checked
		noStore   bool
	}{
		{
			name: "named by backups and runs",
			setup: func(t *testing.T, d *objectDest) {
				d.objectBackup(t, "backup_20240630_020000", []string{a})
				d.objectBackup(t, "backup_20240629_020000", []string{a, b})
				// An incomplete backup (its metadata gone: being pruned) keeps nothing.
				d.put(t, "backup_20240628_020000/"+layout.FileIndex, fileList(e))
				d.put(t, layout.StagingPrefix+"run1/.wnb/keys/copy-0000.jsonl", fileList(c))
				d.put(t, layout.StagingPrefix+"run2/.wnb/sums/copy-0000.jsonl", fileList(dd))
			},
			// With runs in progress the grace is an hour at least: e, unnamed, is young.
			wantKept: []string{a, b, c, dd, e}, wantLive: 4,
		},
		{
			name: "named by backups",
			setup: func(t *testing.T, d *objectDest) {
				d.objectBackup(t, "backup_20240630_020000", []string{a})
				d.objectBackup(t, "backup_20240629_020000", []string{a, b})
				d.put(t, "backup_20240628_020000/"+layout.FileIndex, fileList(e))
			},
			wantKept: []string{a, b}, wantGone: []string{c, dd, e}, wantSwept: 3, wantLive: 2,
		},
		{
			name: "a complete backup's index cannot be read",
			setup: func(t *testing.T, d *objectDest) {
				d.objectBackup(t, "backup_20240630_020000", []string{a})
				d.objectBackup(t, "backup_20240629_020000", nil)
			},
			wantErr: "backup_20240629_020000", wantKept: []string{a, b, c, dd, e},
		},
		// A complete backup whose metadata does not read (a 403, a 503 after its retries) or
		// does not parse may still use its objects: it is no incomplete backup to pass over.
		{
			name: "a backup's metadata cannot be read",
			setup: func(t *testing.T, d *objectDest) {
				d.objectBackup(t, "backup_20240630_020000", []string{a})
				d.objectBackup(t, "backup_20240629_020000", []string{b, c, dd, e})
				d.denied.Store("backup_20240629_020000/" + layout.FileMetadata)
			},
			wantErr: "backup_20240629_020000: cannot tell which objects it uses", wantKept: []string{a, b, c, dd, e},
		},
		{
			name: "a backup's metadata does not parse",
			setup: func(t *testing.T, d *objectDest) {
				d.objectBackup(t, "backup_20240630_020000", []string{a})
				d.objectBackup(t, "backup_20240629_020000", []string{b, c, dd, e})
				d.put(t, "backup_20240629_020000/"+layout.FileMetadata, []byte(`{"format_version": 1, "status": "comp`))
			},
			wantErr: "backup_20240629_020000: cannot tell which objects it uses", wantKept: []string{a, b, c, dd, e},
		},
		{
			name:     "dry run",
			setup:    func(t *testing.T, d *objectDest) { d.objectBackup(t, "backup_20240630_020000", []string{a}) },
			o:        SweepOptions{DryRun: true},
			wantKept: []string{a, b, c, dd, e}, wantSwept: 4,
		},
		{
			name: "dry run of a backup prune would remove",
			setup: func(t *testing.T, d *objectDest) {
				d.objectBackup(t, "backup_20240630_020000", []string{a})
				d.objectBackup(t, "backup_20240629_020000", []string{b, c, dd, e})
			},
			o:        SweepOptions{DryRun: true, Dropped: map[string]bool{"backup_20240629_020000": true}},
			wantKept: []string{a, b, c, dd, e}, wantSwept: 4,
		},
		{
			name:     "within the grace period",
			setup:    func(t *testing.T, d *objectDest) { d.objectBackup(t, "backup_20240630_020000", []string{a}) },
			o:        SweepOptions{Grace: time.Hour},
			wantKept: []string{a, b, c, dd, e},
		},
		{
			name:    "no object store",
			noStore: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newObjectDest(t)
			if !tt.noStore {
				for _, s := range []string{a, b, c, dd, e} {
					d.put(t, layout.ObjectKey(s), []byte("x"))
				}
				d.put(t, layout.ObjectsDir+"/sha256/notes.txt", []byte("not an object of ours"))
			}
			if tt.setup != nil {
				tt.setup(t, d)
			}
			time.Sleep(10 * time.Millisecond) // the objects are older than the sweep's start
			dest, err := OpenDestination(context.Background(), d.url)
			if err != nil {
				t.Fatal(err)
			}
			defer dest.Close()
			res, err := dest.SweepObjects(context.Background(), tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to name %s", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.noStore {
				if res != nil {
					t.Fatalf("a destination without objects/sha256 was swept: %+v", res)
				}
			} else if tt.wantErr == "" && (res.Swept != tt.wantSwept || tt.wantLive != 0 && res.Live != tt.wantLive) {
				t.Fatalf("swept %d, want %d; live %d, want %d (%+v)", res.Swept, tt.wantSwept, res.Live, tt.wantLive, res)
			}
			for _, s := range tt.wantKept {
				if !d.has(layout.ObjectKey(s)) {
					t.Errorf("object %s deleted", s[:8])
				}
			}
			for _, s := range tt.wantGone {
				if d.has(layout.ObjectKey(s)) {
					t.Errorf("object %s kept", s[:8])
				}
			}
			if !tt.noStore && !d.has(layout.ObjectsDir+"/sha256/notes.txt") {
				t.Error("a key the store did not write was deleted")
			}
		})
	}
}

// An object written again after the sweep listed it (a run found its content already stored
// and wrote it anew) is not deleted: its age is checked again just before the deletion.
func TestSweepChecksAgeBeforeDeleting(t *testing.T) {
	d := newObjectDest(t)
	dest, err := OpenDestination(context.Background(), d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	key := layout.ObjectKey(hexSum("a"))
	if _, err := dest.bucket.Put(context.Background(), key, strings.NewReader("a"), storage.Object{}); err != nil {
		t.Fatal(err)
	}
	deleted, err := dest.deleteIfOld(context.Background(), key, time.Now().Add(-time.Hour))
	if err != nil || deleted || !d.has(key) {
		t.Fatalf("a young object: deleted %v, %v", deleted, err)
	}
	deleted, err = dest.deleteIfOld(context.Background(), key, time.Now().Add(time.Hour))
	if err != nil || !deleted || d.has(key) {
		t.Fatalf("an old object: deleted %v, %v", deleted, err)
	}
}

// A backup whose metadata is there but does not read is listed as unreadable, not
// incomplete, and prune keeps it even with --prune-incomplete.
func TestUnreadableBackupIsKept(t *testing.T) {
	d := newObjectDest(t)
	d.objectBackup(t, "backup_20240630_020000", []string{hexSum("a")})
	d.objectBackup(t, "backup_20240101_020000", []string{hexSum("b")})
	d.denied.Store("backup_20240101_020000/" + layout.FileMetadata)
	dest, err := OpenDestination(context.Background(), d.url)
	if err != nil {
		t.Fatal(err)
	}
	defer dest.Close()
	backups, err := dest.List(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	decisions, err := Decide(backups, Policy{Last: 1}, DecideOptions{Now: time.Now(), PruneIncomplete: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, dec := range decisions {
		if dec.Backup.Name == "backup_20240101_020000" && (dec.Backup.Status != StatusUnreadable || !dec.Keep) {
			t.Errorf("backup with unreadable metadata: status %s, keep %v (%v)", dec.Backup.Status, dec.Keep, dec.Reasons)
		}
	}
}
