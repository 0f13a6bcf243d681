package messages

import (
	"encoding/json"
	"fmt"
)

// subjectProgress is core NATS, outside both streams' subject filters: progress is lossy and
// nothing of it is stored (a lost message only delays the bar until the next one or the result).
const subjectProgress = "wnb.progress"

// ProgressSubject is where the workers of a run publish the bytes their copy tasks have
// written so far: wnb.progress.<run>.
func ProgressSubject(run string) string { return subjectProgress + "." + run }

// Progress is a copy task's progress while it runs: Bytes is cumulative for the task (so a
// lost or repeated message costs nothing), and no Progress follows the task's final result.
type Progress struct {
	Version int    `json:"v"`
	Run     string `json:"run"`
	Task    string `json:"task"`
	Bytes   int64  `json:"bytes"`
}

// DecodeProgress parses and checks a progress message.
func DecodeProgress(data []byte) (*Progress, error) {
	var p Progress
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("decode progress: %w", err)
	}
	if p.Version != Version {
		return nil, fmt.Errorf("decode progress of task %q: wire version %d, this build speaks %d", p.Task, p.Version, Version)
	}
	if !ValidToken(p.Run) || !ValidToken(p.Task) || p.Bytes < 0 {
		return nil, fmt.Errorf("decode progress: bad run %q, task %q or bytes %d", p.Run, p.Task, p.Bytes)
	}
	return &p, nil
}
