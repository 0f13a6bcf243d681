package retention

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
)

// at parses "2006-01-02 15:04:05" in UTC.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// complete returns a complete folder backup taken at the given times.
func complete(t *testing.T, times ...string) []Backup {
	t.Helper()
	var bs []Backup
	for _, s := range times {
		ts := at(t, s)
		bs = append(bs, Backup{Name: layout.Name(ts), Kind: KindFolder, Status: StatusComplete, Time: ts, Seq: 1, ModTime: ts})
	}
	return bs
}

// daily returns one complete backup a day at 02:00 from first to last (inclusive).
func daily(t *testing.T, first, last string) []Backup {
	t.Helper()
	var times []string
	for d := at(t, first+" 02:00:00"); !d.After(at(t, last+" 02:00:00")); d = d.AddDate(0, 0, 1) {
		times = append(times, d.Format("2006-01-02 15:04:05"))
	}
	return complete(t, times...)
}

// names returns backup names at the given times, for expectations.
func names(t *testing.T, times ...string) []string {
	t.Helper()
	var ns []string
	for _, s := range times {
		ns = append(ns, layout.Name(at(t, s)))
	}
	return ns
}

func kept(ds []Decision) []string {
	var ns []string
	for _, d := range ds {
		if d.Keep {
			ns = append(ns, d.Backup.Name)
		}
	}
	return ns
}

func TestDecide(t *testing.T) {
	halfYear := daily(t, "2024-01-01", "2024-06-30") // 182 backups; 2024-06-30 is a Sunday
	now := at(t, "2024-07-01 12:00:00")
	yearEnd := complete(t, "2024-12-28 02:00:00", "2024-12-29 02:00:00", "2024-12-30 02:00:00", "2025-01-02 02:00:00", "2025-01-06 02:00:00")
	gaps := complete(t, "2024-06-01 02:00:00", "2024-06-05 02:00:00", "2024-06-05 14:00:00", "2024-06-10 02:00:00")
	sameSecond := complete(t, "2024-06-10 02:00:00", "2024-06-10 02:00:00")
	sameSecond[1].Name += "-2"
	sameSecond[1].Seq = 2

	tests := []struct {
		name    string
		backups []Backup
		policy  Policy
		want    []string
	}{
		{"last 3", halfYear, Policy{Last: 3}, names(t, "2024-06-30 02:00:00", "2024-06-29 02:00:00", "2024-06-28 02:00:00")},
		{"daily 7", halfYear, Policy{Daily: 7}, names(t,
			"2024-06-30 02:00:00", "2024-06-29 02:00:00", "2024-06-28 02:00:00", "2024-06-27 02:00:00",
			"2024-06-26 02:00:00", "2024-06-25 02:00:00", "2024-06-24 02:00:00")},
		{"weekly 4: newest of each ISO week", halfYear, Policy{Weekly: 4}, names(t,
			"2024-06-30 02:00:00", "2024-06-23 02:00:00", "2024-06-16 02:00:00", "2024-06-09 02:00:00")},
		{"monthly 3: newest of each month", halfYear, Policy{Monthly: 3}, names(t,
			"2024-06-30 02:00:00", "2024-05-31 02:00:00", "2024-04-30 02:00:00")},
		{"monthly beyond history keeps every month", halfYear, Policy{Monthly: 24}, names(t,
			"2024-06-30 02:00:00", "2024-05-31 02:00:00", "2024-04-30 02:00:00",
			"2024-03-31 02:00:00", "2024-02-29 02:00:00", "2024-01-31 02:00:00")},
		{"union of rules", halfYear, Policy{Last: 2, Daily: 7, Weekly: 4, Monthly: 3}, names(t,
			"2024-06-30 02:00:00", "2024-06-29 02:00:00", "2024-06-28 02:00:00", "2024-06-27 02:00:00",
			"2024-06-26 02:00:00", "2024-06-25 02:00:00", "2024-06-24 02:00:00", "2024-06-23 02:00:00",
			"2024-06-16 02:00:00", "2024-06-09 02:00:00", "2024-05-31 02:00:00", "2024-04-30 02:00:00")},
		{"ISO weeks across the year end", yearEnd, Policy{Weekly: 3}, names(t,
			"2025-01-06 02:00:00", "2025-01-02 02:00:00", "2024-12-29 02:00:00")},
		{"months across the year end", yearEnd, Policy{Monthly: 2}, names(t,
			"2025-01-06 02:00:00", "2024-12-30 02:00:00")},
		{"daily counts days that have backups", gaps, Policy{Daily: 3}, names(t,
			"2024-06-10 02:00:00", "2024-06-05 14:00:00", "2024-06-01 02:00:00")},
		{"same second: the -2 is newer", sameSecond, Policy{Last: 1}, []string{sameSecond[1].Name}},
		{"unsorted input", []Backup{gaps[2], gaps[0], gaps[3], gaps[1]}, Policy{Last: 2}, names(t,
			"2024-06-10 02:00:00", "2024-06-05 14:00:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Decide(tt.backups, tt.policy, DecideOptions{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != len(tt.backups) {
				t.Fatalf("%d decisions for %d backups", len(ds), len(tt.backups))
			}
			if got := kept(ds); !slices.Equal(got, tt.want) {
				t.Errorf("kept %v\nwant %v", got, tt.want)
			}
			for i, d := range ds {
				if len(d.Reasons) == 0 {
					t.Errorf("%s: no reason", d.Backup.Name)
				}
				if i > 0 && newer(d.Backup, ds[i-1].Backup) {
					t.Errorf("decisions not newest first at %s", d.Backup.Name)
				}
			}
		})
	}
}

func TestDecideReasons(t *testing.T) {
	bs := complete(t, "2024-06-30 02:00:00", "2024-06-29 02:00:00", "2024-06-01 02:00:00")
	ds, err := Decide(bs, Policy{Last: 1, Monthly: 2}, DecideOptions{Now: at(t, "2024-07-01 00:00:00")})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"last 1", "monthly 2024-06", "newest complete backup: never pruned"},
		{"not kept by any rule"},
		{"not kept by any rule"}, // June already has its newest; May has no backup
	}
	for i, d := range ds {
		if !slices.Equal(d.Reasons, want[i]) {
			t.Errorf("%s: reasons %q, want %q", d.Backup.Name, d.Reasons, want[i])
		}
	}
}

// Incomplete backups and runs in progress never count toward the rules, and are removed only
// when old and asked for.
func TestDecideIncompleteAndInProgress(t *testing.T) {
	now := at(t, "2024-07-01 12:00:00")
	bs := complete(t, "2024-06-20 02:00:00", "2024-06-10 02:00:00")
	young := Backup{Name: "backup_20240701_020000", Kind: KindFolder, Status: StatusIncomplete, Time: at(t, "2024-07-01 02:00:00"), Seq: 1, Problem: "no metadata"}
	// Named long ago but still being written to an hour ago: young.
	stillWritten := Backup{Name: "backup_20240601_020000", Kind: KindFolder, Status: StatusIncomplete, Time: at(t, "2024-06-01 02:00:00"), ModTime: at(t, "2024-07-01 11:00:00"), Seq: 1, Problem: "no metadata"}
	old := Backup{Name: "backup_20240615_020000", Kind: KindFolder, Status: StatusIncomplete, Time: at(t, "2024-06-15 02:00:00"), ModTime: at(t, "2024-06-15 02:10:00"), Seq: 1, Problem: "no metadata"}
	staging := Backup{Name: ".wnb-staging-run1", Kind: KindStaging, Status: StatusInProgress, Time: at(t, "2024-05-01 00:00:00")}
	all := append(bs, young, stillWritten, old, staging)

	tests := []struct {
		name            string
		pruneIncomplete bool
		wantRemoved     []string
	}{
		{"without --prune-incomplete", false, []string{"backup_20240610_020000"}},
		{"with --prune-incomplete", true, []string{"backup_20240615_020000", "backup_20240610_020000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Decide(all, Policy{Last: 1}, DecideOptions{Now: now, PruneIncomplete: tt.pruneIncomplete})
			if err != nil {
				t.Fatal(err)
			}
			var removed []string
			for _, d := range ds {
				if !d.Keep {
					removed = append(removed, d.Backup.Name)
				}
				if d.Backup.Name == "backup_20240620_020000" && !d.Keep {
					t.Error("the only complete backup newer than the incomplete ones was not kept by last 1")
				}
			}
			if !slices.Equal(removed, tt.wantRemoved) {
				t.Errorf("removed %v, want %v", removed, tt.wantRemoved)
			}
			for _, d := range ds {
				if d.Backup.Name == staging.Name && !strings.Contains(d.Reasons[0], "in progress") {
					t.Errorf("staging reason %q", d.Reasons)
				}
				if d.Backup.Name == young.Name && !strings.Contains(d.Reasons[0], "less than a day") {
					t.Errorf("young incomplete reason %q", d.Reasons)
				}
			}
		})
	}
}

func TestDecideRefusesBadPolicies(t *testing.T) {
	bs := complete(t, "2024-06-30 02:00:00")
	for _, p := range []Policy{{}, {Last: -1, Daily: 3}} {
		if _, err := Decide(bs, p, DecideOptions{}); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
}
