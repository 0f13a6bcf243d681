package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
)

// A restore whose copies stopped midway says how many files are in place, how many are not,
// and why, in text and JSON, instead of "0 restored, 0 failed".
func TestRestoreReportStoppedMidway(t *testing.T) {
	rep := &coordinator.RestoreReport{RunID: "r", Files: 15, Bytes: 44 << 20, Unfinished: 385,
		Stopped: "task restore-content-0000 failed: no space left on device"}
	var out bytes.Buffer
	printRestoreReport(&out, rep)
	text := out.String()
	for _, want := range []string{"Restore stopped:", "15 restored (46137344 bytes) before the copies stopped", "385 not restored", "stopped: task restore-content-0000 failed: no space left on device"} {
		if !strings.Contains(text, want) {
			t.Errorf("report does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "at least") {
		t.Errorf("exact counts said to be a lower bound:\n%s", text)
	}
	rep.FilesAtLeast = true
	out.Reset()
	printRestoreReport(&out, rep)
	if text := out.String(); !strings.Contains(text, "at least 15 restored") || !strings.Contains(text, "at most 385 not restored") {
		t.Errorf("a lower bound not said to be one:\n%s", text)
	}
	b, err := json.Marshal(restoreJSON(rep, errors.New(rep.Stopped)))
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Files        int64  `json:"files"`
		Stopped      string `json:"files_stopped"`
		NotRestored  int64  `json:"files_not_restored"`
		FilesAtLeast bool   `json:"files_at_least"`
	}
	if err := json.Unmarshal(b, &j); err != nil || j.Files != 15 || j.NotRestored != 385 || !j.FilesAtLeast || j.Stopped != rep.Stopped {
		t.Fatalf("JSON %s (%v)", b, err)
	}
}
