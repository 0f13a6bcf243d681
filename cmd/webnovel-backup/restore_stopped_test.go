package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/layout"
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

// The plan names the owner the restored files are given (a root restore into a storage of
// another user's), in text and JSON; without one, neither says a word of it.
func TestRestorePlanNamesOwner(t *testing.T) {
	for _, owner := range []string{"4242:4343", ""} {
		rep := &coordinator.RestoreReport{RunID: "r", DryRun: true, Plan: &coordinator.RestorePlan{Metadata: &layout.Metadata{}, Storage: "/srv/media", Files: 3, Owner: owner}}
		var out bytes.Buffer
		printRestorePlan(&out, rep.Plan)
		if said := strings.Contains(out.String(), "owner: what is written is given "+owner); said != (owner != "") {
			t.Errorf("owner %q: plan says %q", owner, out.String())
		}
		b, err := json.Marshal(restoreJSON(rep, nil))
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			Owner *string `json:"owner"`
		}
		if err := json.Unmarshal(b, &j); err != nil || (owner == "") != (j.Owner == nil) || (j.Owner != nil && *j.Owner != owner) {
			t.Errorf("owner %q: JSON %s (%v)", owner, b, err)
		}
	}
}
