package messages

import (
	"encoding/json"
	"fmt"
	"time"
)

// RunsBucket is the JetStream key-value bucket where coordinators record their runs, keyed by
// run id: what `runs` lists and what `backup --resume` reads.
const RunsBucket = "WNB_RUNS"

// Run states.
const (
	RunRunning  = "running"
	RunComplete = "complete"
	RunFailed   = "failed"
	// RunAbandoned is not stored: it is how a running record whose coordinator stopped
	// heartbeating is shown.
	RunAbandoned = "abandoned"
)

// RunHeartbeat is how often a coordinator refreshes its run record; a record older than
// three heartbeats belongs to a coordinator that died.
var RunHeartbeat = 5 * time.Second

// RunRecord describes one run.
type RunRecord struct {
	Version int    `json:"v"`
	ID      string `json:"id"`
	Kind    string `json:"kind"` // "backup" or "restore"
	State   string `json:"state"`
	// Coordinator is the host and pid running the run.
	Coordinator string    `json:"coordinator"`
	Started     time.Time `json:"started"`
	Heartbeat   time.Time `json:"heartbeat"`
	Finished    time.Time `json:"finished,omitzero"`
	// Database and Storage are redacted locations.
	Database string `json:"database,omitempty"`
	Storage  string `json:"storage,omitempty"`
	// BackupDir and Staging are where a backup is being written. Staging is cleared once the
	// staging area is removed: a failed run that still names it can be resumed.
	BackupDir string `json:"backup_dir,omitempty"`
	Staging   string `json:"staging,omitempty"`
	// Publishing is the backup name a publish has started to write (S3 copies it object by
	// object), so a resume finishes that publish instead of leaving it half done.
	Publishing string `json:"publishing,omitempty"`
	// Path is the finished backup; Error why the run failed.
	Path  string `json:"path,omitempty"`
	Error string `json:"error,omitempty"`
	// Options are the settings needed to resume (no secrets).
	Options json.RawMessage `json:"options,omitempty"`
	// Generation counts resumes: re-published tasks get new ids, and tasks of an older
	// generation are refused by the workers.
	Generation int `json:"generation,omitempty"`
}

// Resumable reports whether `backup --resume` may take the run over: its coordinator died
// (abandoned), or it failed and kept its staging area.
func (r *RunRecord) Resumable(now time.Time) bool {
	switch r.Shown(now) {
	case RunAbandoned:
		return true
	case RunFailed:
		return r.Kind == "backup" && r.Staging != ""
	}
	return false
}

// AcceptsTask reports why a worker must not write for a task of generation gen of this run,
// or "" when it may: the run is over (complete or failed), or a resume has claimed it since
// the task was published.
func (r *RunRecord) AcceptsTask(gen int) string {
	switch {
	case r.State == RunComplete || r.State == RunFailed:
		return fmt.Sprintf("run %s is %s", r.ID, r.State)
	case gen < r.Generation:
		return fmt.Sprintf("run %s: generation moved on (task of generation %d, run at %d, coordinator %s)", r.ID, gen, r.Generation, r.Coordinator)
	}
	return ""
}

// Shown is the state as a person should see it: a running record without a recent heartbeat
// is abandoned.
func (r *RunRecord) Shown(now time.Time) string {
	if r.State == RunRunning && now.Sub(r.Heartbeat) > 3*RunHeartbeat {
		return RunAbandoned
	}
	return r.State
}

// DecodeRun parses a run record.
func DecodeRun(data []byte) (*RunRecord, error) {
	var r RunRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode run record: %w", err)
	}
	if r.Version != Version {
		return nil, fmt.Errorf("decode run record %q: version %d, this build reads %d", r.ID, r.Version, Version)
	}
	return &r, nil
}
