//go:build unix

package faults

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// objectChain is three object-store backups to S3 of a small platform that changes between
// them, made by the real binary.
type objectChain struct {
	dest    *storage.Bucket
	destURL string
	names   []string
}

func newObjectChain(t *testing.T, s scene, s3 *s3test.Server, prefix string) *objectChain {
	t.Helper()
	dir := t.TempDir()
	db, media := filepath.Join(dir, "db.sqlite3"), filepath.Join(dir, "media")
	_, err := demo.Fill(context.Background(), "sqlite:///"+db, media, demo.Options{
		Seed: 3, Users: 4, Authors: 2, Languages: 2, Books: 3, ChaptersPerBook: 4, MediaPerChapter: 1, FileBytes: 3000,
	})
	if err != nil {
		t.Fatal(err)
	}
	var regular []string
	filepath.WalkDir(media, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			regular = append(regular, p)
		}
		return err
	})
	c := &objectChain{destURL: s3.URL("backups", prefix, "")}
	env := []string{"DATABASE_URL=sqlite:///" + db, "STORAGE_URL=" + media, "NATS_URL=" + s.srv.URL()}
	for i := range 3 {
		for _, f := range regular[i*2 : i*2+2] { // two files change before each backup
			if err := os.WriteFile(f, []byte(fmt.Sprintf("version %d of %s", i, f)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p := proctest.Run(t, s.bin, env, "backup", "--backup-dir", c.destURL, "--workers", "2")
		if p.ExitCode() != 0 {
			t.Fatalf("backup %d exited %d:\n%s", i+1, p.ExitCode(), lastLines(p.Stderr(), 20))
		}
		c.names = append(c.names, onlyNewName(t, p.Stdout()))
	}
	if c.dest, err = storage.Open(context.Background(), c.destURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.dest.Close() })
	return c
}

// onlyNewName is the backup a backup run's report names.
func onlyNewName(t *testing.T, stdout string) string {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if loc, ok := strings.CutPrefix(line, "Backup complete: "); ok {
			where, _, _ := strings.Cut(strings.TrimSpace(loc), "?")
			return path.Base(where)
		}
	}
	t.Fatalf("no backup named in:\n%s", stdout)
	return ""
}

// objects maps the object store's sums to nothing.
func (c *objectChain) objects(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := c.dest.Walk(context.Background(), layout.ObjectsDir+"/", func(o storage.Object) error {
		out[path.Base(o.Key)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// whole checks that every object a backup's index names exists with its sum, and returns
// the sums.
func (c *objectChain) whole(t *testing.T, name string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	r, _, err := c.dest.Open(ctx, name+"/"+layout.FileIndexGz)
	if err != nil {
		t.Fatalf("backup %s: %v", name, err)
	}
	defer r.Close()
	need := map[string]bool{}
	err = messages.ReadFileList(layout.DecompressIndex(r), func(e messages.FileEntry) error {
		or, _, err := c.dest.Open(ctx, e.Stored)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		defer or.Close()
		h := sha256.New()
		io.Copy(h, or)
		if hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
			return fmt.Errorf("%s: object %s does not hold its content", e.Path, e.Stored)
		}
		need[e.SHA256] = true
		return nil
	})
	if err != nil {
		t.Fatalf("backup %s lost an object: %v", name, err)
	}
	return need
}

// A prune killed with SIGKILL while it removes a backup (its metadata gone, its other files
// not yet) or while it sweeps the object store loses nothing a remaining backup needs, and a
// second prune finishes the sweep: the store then holds exactly the objects the remaining
// backup needs. A dry run before it says what it would sweep and deletes nothing.
func TestPruneKilledKeepsObjects(t *testing.T) {
	tests := []struct {
		name, halt, reached string
	}{
		{"killed after removing a backup's metadata", "WNB_TEST_REMOVE_HALT=*", "WNB_TEST_REMOVE_HALT reached"},
		{"killed in the sweep", "WNB_TEST_SWEEP_HALT=1", "WNB_TEST_SWEEP_HALT reached 1"},
	}
	s := newScene(t)
	s3 := s3test.Start(t, nil, "backups")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newObjectChain(t, s, s3, fmt.Sprintf("chain%d", i))
			last := c.names[len(c.names)-1]
			need := c.whole(t, last)
			before := c.objects(t)
			if len(before) <= len(need) {
				t.Fatalf("the chain's store holds %d objects, the newest backup needs %d: nothing to sweep", len(before), len(need))
			}
			prune := []string{"prune", "--backup-dir", c.destURL, "--keep-last", "1", "--grace", "0s"}
			p := proctest.Start(t, s.bin, []string{tt.halt}, prune...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			waitFor(t, ctx, "the prune to halt", func() bool {
				if p.Exited() {
					t.Fatalf("prune ended before its halt:\n%s%s", p.Stdout(), p.Stderr())
				}
				return strings.Contains(p.Stderr(), tt.reached)
			})
			p.Kill()
			c.whole(t, last)

			dry := proctest.Run(t, s.bin, nil, append(prune, "--dry-run", "--json")...)
			var res struct {
				Sweep *struct {
					Swept  int64 `json:"swept"`
					DryRun bool  `json:"dry_run"`
				} `json:"sweep"`
			}
			if err := json.Unmarshal([]byte(dry.Stdout()), &res); err != nil || dry.ExitCode() != 0 || res.Sweep == nil || !res.Sweep.DryRun || res.Sweep.Swept == 0 {
				t.Fatalf("dry run: exit %d, %v: %s%s", dry.ExitCode(), err, dry.Stdout(), dry.Stderr())
			}
			left := c.objects(t)
			again := proctest.Run(t, s.bin, nil, prune...)
			if again.ExitCode() != 0 || !strings.Contains(again.Stdout(), "Object store: ") {
				t.Fatalf("second prune: exit %d\n%s%s", again.ExitCode(), again.Stdout(), again.Stderr())
			}
			if after := c.objects(t); len(after) != len(need) || int64(len(left)-len(after)) != res.Sweep.Swept {
				t.Fatalf("after the second prune the store holds %d objects (dry run said %d of %d go), the newest backup needs %d:\n%s",
					len(after), res.Sweep.Swept, len(left), len(need), again.Stdout())
			}
			c.whole(t, last)
			if !bytes.Contains([]byte(again.Stdout()), []byte("swept")) {
				t.Fatalf("prune does not report the sweep:\n%s", again.Stdout())
			}
		})
	}
}

// A backup to S3 whose coordinator is killed with SIGKILL while the files are being stored
// into the object store is resumed into a backup whose index maps every storage file to an
// object holding its bytes; a prune after it keeps every one of them.
func TestS3ObjectBackupKilledResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	sc := newScene(t)
	mon := newMonitor(t, sc.srv.URL())
	s3 := s3test.Start(t, nil, "backups")
	dest := s3.URL("backups", "nightly", "")
	proctest.StartWorker(t, sc.bin, sc.env, "--name", "w1", "--concurrency", "2")
	coord := proctest.Start(t, sc.bin, runEnv(sc.env, "copy"), backupArgs(dest)...)
	rec := haltAndKill(t, ctx, mon, coord, "copy")
	resumed := proctest.Start(t, sc.bin, runEnv(sc.env, ""), "backup", "--workers", "0", "--resume", rec.ID, "-v")
	name := onlyNewName(t, "Backup complete: "+waitBackup(t, ctx, resumed))

	c := &objectChain{destURL: dest, names: []string{name}}
	var err error
	if c.dest, err = storage.Open(ctx, dest); err != nil {
		t.Fatal(err)
	}
	defer c.dest.Close()
	checkIndexMatches(t, c, name, sc.p.Storage)
	prune := proctest.Run(t, sc.bin, nil, "prune", "--backup-dir", dest, "--keep-last", "1", "--grace", "0s")
	if prune.ExitCode() != 0 {
		t.Fatalf("prune: exit %d\n%s%s", prune.ExitCode(), prune.Stdout(), prune.Stderr())
	}
	checkIndexMatches(t, c, name, sc.p.Storage)
}

// checkIndexMatches checks that a backup's index lists exactly the files of a storage
// folder, each stored in an object holding its bytes.
func checkIndexMatches(t *testing.T, c *objectChain, name, storageDir string) {
	t.Helper()
	c.whole(t, name)
	want := map[string]string{}
	filepath.WalkDir(storageDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			data, rerr := os.ReadFile(p)
			if rerr != nil {
				return rerr
			}
			rel, _ := filepath.Rel(storageDir, p)
			h := sha256.Sum256(data)
			want[layout.FilesDir+"/"+filepath.ToSlash(rel)] = hex.EncodeToString(h[:])
		}
		return err
	})
	r, _, err := c.dest.Open(context.Background(), name+"/"+layout.FileIndexGz)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[string]string{}
	messages.ReadFileList(layout.DecompressIndex(r), func(e messages.FileEntry) error {
		got[e.Path] = e.SHA256
		return nil
	})
	if len(got) != len(want) {
		t.Fatalf("the index lists %d files, the storage holds %d", len(got), len(want))
	}
	for p, sum := range want {
		if got[p] != sum {
			t.Fatalf("%s: index sum %q, file %s", p, got[p], sum)
		}
	}
}
