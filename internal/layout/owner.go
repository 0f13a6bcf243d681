package layout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/webnovel/webnovel-backup/internal/scratch"
	"github.com/webnovel/webnovel-backup/storage"
)

// OwnerSuffix ends the name of a staging folder's owner record, written beside the folder
// (<backupDir>/.wnb-staging-<run>.owner.json) so that it is never part of the published
// backup.
const OwnerSuffix = ".owner.json"

// HeartbeatEvery is how often a live run refreshes its owner record's heartbeat.
const HeartbeatEvery = 30 * time.Second

// OwnerStaleAfter is how old the heartbeat of a run on another host must be for the run to
// be taken for dead: that host's processes cannot be checked from here.
const OwnerStaleAfter = 10 * time.Minute

// NoOwnerStaleAfter is how long a staging folder without an owner record (written by an
// older version) must be unchanged to be taken for abandoned.
const NoOwnerStaleAfter = 24 * time.Hour

// Owner says which process writes a staging folder, so that one left by a killed run can
// be told from a run in progress.
type Owner struct {
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Start     uint64    `json:"process_start"` // process start time (clock ticks since boot on Linux; 0 unknown)
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// OwnerPath returns the owner record of the staging folder stagingPath.
func OwnerPath(stagingPath string) string { return stagingPath + OwnerSuffix }

// SelfOwner returns this process's owner record, its heartbeat now.
func SelfOwner(now time.Time) Owner {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return Owner{Host: host, PID: pid, Start: scratch.ProcessStart(pid), Started: now, Heartbeat: now}
}

// WriteOwner writes the owner record of stagingPath atomically (a temporary file renamed).
func WriteOwner(stagingPath string, o Owner) error {
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("write owner of %s: %w", stagingPath, err)
	}
	name := OwnerPath(stagingPath)
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write owner of %s: %w", stagingPath, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write owner of %s: %w", stagingPath, err)
	}
	return nil
}

// maxOwnerSize bounds an owner record (a few hundred bytes) as it is read.
const maxOwnerSize = 1 << 20

// ReadOwner reads the owner record of stagingPath; fs.ErrNotExist when there is none.
func ReadOwner(stagingPath string) (Owner, error) {
	var o Owner
	data, err := storage.ReadRegular(OwnerPath(stagingPath), maxOwnerSize)
	if err != nil {
		return o, fmt.Errorf("read owner of %s: %w", stagingPath, err)
	}
	if err := json.Unmarshal(data, &o); err != nil {
		return o, fmt.Errorf("read owner of %s: %w", OwnerPath(stagingPath), err)
	}
	return o, nil
}

// Abandoned reports whether the run that owns a staging folder is gone, and why (or why it
// is taken for alive): on this host, its pid no longer runs or now belongs to a process
// started at another time; on another host, its heartbeat is older than OwnerStaleAfter.
func (o Owner) Abandoned(now time.Time) (bool, string) {
	host, _ := os.Hostname()
	if o.Host == host {
		if scratch.ProcessAlive(o.PID, o.Start) {
			return false, fmt.Sprintf("owner pid %d on %s runs", o.PID, o.Host)
		}
		return true, fmt.Sprintf("owner pid %d on %s is gone", o.PID, o.Host)
	}
	age := now.Sub(o.Heartbeat)
	if age > OwnerStaleAfter {
		return true, fmt.Sprintf("owner pid %d on %s: no heartbeat for %s", o.PID, o.Host, age.Round(time.Second))
	}
	return false, fmt.Sprintf("owner pid %d on %s: heartbeat %s ago", o.PID, o.Host, age.Round(time.Second))
}

// StagingAbandoned reports whether the staging folder stagingPath was left by a run that is
// gone, and why. A folder without an owner record counts as abandoned once modTime (its
// newest change) is older than NoOwnerStaleAfter.
func StagingAbandoned(stagingPath string, modTime, now time.Time) (bool, string) {
	o, err := ReadOwner(stagingPath)
	if errors.Is(err, fs.ErrNotExist) {
		if now.Sub(modTime) > NoOwnerStaleAfter {
			return true, "no owner record, unchanged for over a day"
		}
		return false, "no owner record"
	}
	if err != nil {
		return false, err.Error()
	}
	return o.Abandoned(now)
}

// heartbeat refreshes a staging folder's owner record until stopped.
type heartbeat struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// startHeartbeat writes this process's owner record for stagingPath and refreshes its
// heartbeat every HeartbeatEvery until Stop.
func startHeartbeat(stagingPath string) (*heartbeat, error) {
	self := SelfOwner(time.Now())
	if err := WriteOwner(stagingPath, self); err != nil {
		return nil, err
	}
	h := &heartbeat{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(HeartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case now := <-t.C:
				self.Heartbeat = now
				// A failed refresh only ages the record; the run goes on.
				_ = WriteOwner(stagingPath, self)
			}
		}
	}()
	return h, nil
}

// Stop ends the refreshes and removes the owner record.
func (h *heartbeat) Stop(stagingPath string) {
	if h == nil {
		return
	}
	h.once.Do(func() {
		close(h.stop)
		<-h.done
		os.Remove(OwnerPath(stagingPath))
	})
}

// RemoveAbandoned removes an abandoned staging folder and its owner record. It refuses one
// whose owner still runs.
func RemoveAbandoned(stagingPath string, modTime, now time.Time) error {
	if dead, why := StagingAbandoned(stagingPath, modTime, now); !dead {
		return fmt.Errorf("remove %s: not abandoned (%s)", stagingPath, why)
	}
	if err := os.RemoveAll(stagingPath); err != nil {
		return fmt.Errorf("remove %s: %w", stagingPath, err)
	}
	if err := os.Remove(OwnerPath(stagingPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", OwnerPath(stagingPath), err)
	}
	return nil
}
