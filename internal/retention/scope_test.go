package retention

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

func TestScopeOf(t *testing.T) {
	tests := []struct {
		name string
		opts layout.BackupOptions
		want Scope
	}{
		{"full", layout.BackupOptions{IncludeFiles: true}, ScopeFull},
		{"skip files", layout.BackupOptions{}, ScopeDatabase},
		{"skip db", layout.BackupOptions{SkipDB: true, IncludeFiles: true}, ScopeFiles},
		{"subset", layout.BackupOptions{Models: layout.ModelSelection{Labels: []string{"books.Book", "accounts.User"}}},
			"models accounts.User,books.Book"},
		{"same subset in another order", layout.BackupOptions{Models: layout.ModelSelection{Labels: []string{"accounts.User", "books.Book"}}},
			"models accounts.User,books.Book"},
		{"subset with files", layout.BackupOptions{IncludeFiles: true, Models: layout.ModelSelection{Labels: []string{"books.Book"}}},
			"models books.Book + files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ScopeOf(tt.opts); got != tt.want {
				t.Errorf("ScopeOf(%+v) = %q, want %q", tt.opts, got, tt.want)
			}
		})
	}
}

// scoped returns complete backups taken at the given times, all of scope s.
func scoped(t *testing.T, s Scope, times ...string) []Backup {
	t.Helper()
	bs := complete(t, times...)
	for i := range bs {
		bs[i].Scope = s
	}
	return bs
}

func TestDecidePerScope(t *testing.T) {
	full := scoped(t, ScopeFull, "2024-06-01 02:00:00", "2024-06-02 02:00:00")
	models := scoped(t, "models books.Book", "2024-06-03 02:00:00", "2024-06-04 02:00:00")
	dbOnly := scoped(t, ScopeDatabase, "2024-06-05 02:00:00")
	filesOnly := scoped(t, ScopeFiles, "2024-06-06 02:00:00")
	otherModels := scoped(t, "models accounts.User", "2024-06-07 02:00:00")
	all := slices.Concat(full, models, dbOnly, filesOnly, otherModels)
	tests := []struct {
		name    string
		backups []Backup
		policy  Policy
		want    []string
	}{
		{"a newer subset does not displace the only full backup", slices.Concat(full[:1], models[1:]), Policy{Last: 1},
			names(t, "2024-06-04 02:00:00", "2024-06-01 02:00:00")},
		{"last 1 per scope", all, Policy{Last: 1}, names(t, "2024-06-07 02:00:00", "2024-06-06 02:00:00",
			"2024-06-05 02:00:00", "2024-06-04 02:00:00", "2024-06-02 02:00:00")},
		{"subsets do not protect a full backup", all, Policy{Last: 2}, names(t, "2024-06-07 02:00:00", "2024-06-06 02:00:00",
			"2024-06-05 02:00:00", "2024-06-04 02:00:00", "2024-06-03 02:00:00", "2024-06-02 02:00:00", "2024-06-01 02:00:00")},
		{"monthly keeps the newest of each scope", all, Policy{Monthly: 1}, names(t, "2024-06-07 02:00:00", "2024-06-06 02:00:00",
			"2024-06-05 02:00:00", "2024-06-04 02:00:00", "2024-06-02 02:00:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Decide(tt.backups, tt.policy, DecideOptions{Now: at(t, "2024-07-01 00:00:00")})
			if err != nil {
				t.Fatal(err)
			}
			if got := kept(ds); !slices.Equal(got, tt.want) {
				t.Errorf("kept %v, want %v", got, tt.want)
			}
		})
	}
}

// deadPID starts a child process, kills it and waits for it: its pid is then gone.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	return pid
}

func TestAbandonedStaging(t *testing.T) {
	host, _ := os.Hostname()
	now := time.Now()
	tests := []struct {
		name   string
		owner  layout.Owner
		status Status
	}{
		{"owner process killed", layout.Owner{Host: host, PID: deadPID(t), Heartbeat: now}, StatusAbandoned},
		{"owner process alive", layout.SelfOwner(now), StatusInProgress},
		{"pid reused by a later process", layout.Owner{Host: host, PID: os.Getpid(), Start: layout.SelfOwner(now).Start + 1, Heartbeat: now}, StatusAbandoned},
		{"other host, fresh heartbeat", layout.Owner{Host: host + "-other", PID: 1, Heartbeat: now}, StatusInProgress},
		{"other host, stale heartbeat", layout.Owner{Host: host + "-other", PID: 1, Heartbeat: now.Add(-time.Hour)}, StatusAbandoned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.owner.Start == 0 && tt.owner.PID == os.Getpid() {
				t.Skip("process start times unknown here")
			}
			ctx := context.Background()
			dir := t.TempDir()
			staging := layout.StagingPath(dir, "run1")
			writeTree(t, staging, map[string][]byte{"db_books_book.json": []byte("[]")}, now)
			if err := layout.WriteOwner(staging, tt.owner); err != nil {
				t.Fatal(err)
			}
			d, err := OpenDestination(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			bs, err := d.List(ctx, ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != 1 || bs[0].Status != tt.status {
				t.Fatalf("listed %+v, want one staging entry %q", bs, tt.status)
			}
			res, err := Prune(ctx, d, Policy{Last: 1}, PruneOptions{DecideOptions: DecideOptions{PruneIncomplete: true}})
			if err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(staging)
			_, ownerErr := os.Stat(layout.OwnerPath(staging))
			if tt.status == StatusAbandoned {
				if !slices.Equal(res.Removed, []string{filepath.Base(staging)}) || statErr == nil || ownerErr == nil {
					t.Errorf("abandoned staging not pruned: removed %v, staging %v, owner %v", res.Removed, statErr, ownerErr)
				}
				return
			}
			if len(res.Removed) != 0 || statErr != nil || ownerErr != nil {
				t.Errorf("live run pruned: removed %v, staging %v, owner %v", res.Removed, statErr, ownerErr)
			}
		})
	}
}

func TestNewStagingOwnedWhileAlive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := layout.NewStaging(dir, "run2")
	if err != nil {
		t.Fatal(err)
	}
	d, err := OpenDestination(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	bs, err := d.List(ctx, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].Status != StatusInProgress {
		t.Fatalf("listed %+v, want the staging in progress", bs)
	}
	if err := s.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(layout.OwnerPath(s.Path())); !os.IsNotExist(err) {
		t.Errorf("owner record left after Abort: %v", err)
	}
}
