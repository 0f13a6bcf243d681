package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func exportTask() *Task {
	return &Task{Version: Version, Run: "20260102T030405-abcd", ID: "export-books_book-0001", Kind: KindExportModel,
		Generation: 3, Dest: "s3://bucket/.wnb-staging-x?region=eu",
		Export: &ExportTask{Database: "postgres://u:xxxxx@db/app", Snapshot: "00000003-1", Model: "books.Book",
			Lo: 1, Hi: 5000, HasLo: true, HasHi: true, Indent: 2, Output: "books_book.json.0001", Whole: true,
			Pieces: []PKRange{{Lo: 1, Hi: 2500, HasLo: true, HasHi: true, Rows: 2500}, {Lo: 2501, Hi: 5000, HasLo: true, HasHi: true, Rows: 2400}}}}
}

func copyTask() *Task {
	return &Task{Version: Version, Run: "run1", ID: "copy-content-0000", Kind: KindCopyPrefix, Dest: "/backups/.wnb-staging-x",
		Copy: &CopyTask{Source: "/media", Prefix: "content/", KeyList: "keys/a.jsonl", DestPrefix: "files/", Sums: "sums/a.jsonl", Keys: 2, Bytes: 99}}
}

func TestTaskRoundTrip(t *testing.T) {
	restore := copyTask()
	restore.Kind, restore.Copy.SourcePrefix, restore.Copy.ListStore = KindRestorePrefix, "files/", "/tmp/lists"
	for _, task := range []*Task{exportTask(), copyTask(), restore} {
		t.Run(task.Kind, func(t *testing.T) {
			data, err := Marshal(task)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeTask(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, task) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, task)
			}
		})
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := &Result{Version: Version, Run: "run1", Task: "copy-content-0000", Kind: KindCopyPrefix, Final: true,
		Attempt: 2, Worker: "host-1", Files: 3, Bytes: 1 << 40, SHA256: strings.Repeat("ab", 32),
		Warnings: []string{"content/gone.json vanished"}, Failed: 1, Failures: []string{"x: denied"}, Duration: 1500 * time.Millisecond}
	data, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResult(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	if !got.OK() {
		t.Fatal("a final result without an error is not OK")
	}
}

func TestResultOK(t *testing.T) {
	tests := []struct {
		r    Result
		want bool
	}{
		{Result{Final: true}, true},
		{Result{Final: true, Error: "boom"}, false},
		{Result{Final: false}, false},
		{Result{Final: false, Error: "retrying"}, false},
	}
	for _, tt := range tests {
		if got := tt.r.OK(); got != tt.want {
			t.Errorf("%+v.OK() = %v, want %v", tt.r, got, tt.want)
		}
	}
}

// DecodeTask is the gate for untrusted task messages: each kind of bad message is refused with
// an error saying what is wrong.
func TestDecodeTaskRefuses(t *testing.T) {
	with := func(f func(*Task)) string {
		task := copyTask()
		f(task)
		data, _ := Marshal(task)
		return string(data)
	}
	tests := []struct {
		name string
		data string
		want string
	}{
		{"not json", "{not json", "decode task"},
		{"empty", "", "decode task"},
		{"json array", "[]", "decode task"},
		{"wrong type", `{"v":"1"}`, "decode task"},
		{"future version", with(func(t *Task) { t.Version = Version + 1 }), fmt.Sprintf("wire version %d, this build speaks %d", Version+1, Version)},
		{"no version", with(func(t *Task) { t.Version = 0 }), "wire version 0"},
		{"negative version", with(func(t *Task) { t.Version = -1 }), "wire version -1"},
		{"run with a dot", with(func(t *Task) { t.Run = "a.b" }), "bad run"},
		{"run with a wildcard", with(func(t *Task) { t.Run = "*" }), "bad run"},
		{"id with >", with(func(t *Task) { t.ID = "x>" }), "task id"},
		{"id with a space", with(func(t *Task) { t.ID = "a b" }), "task id"},
		{"id with a newline", with(func(t *Task) { t.ID = "a\nb" }), "task id"},
		{"empty run", with(func(t *Task) { t.Run = "" }), "bad run"},
		{"empty id", with(func(t *Task) { t.ID = "" }), "task id"},
		{"copy without its body", with(func(t *Task) { t.Copy = nil }), "without its body"},
		{"restore without its body", with(func(t *Task) { t.Kind, t.Copy = KindRestorePrefix, nil }), "without its body"},
		{"export with a copy body", with(func(t *Task) { t.Kind = KindExportModel }), "without its body"},
		{"unknown kind", with(func(t *Task) { t.Kind = "drop-tables" }), `kind "drop-tables"`},
		{"no kind", with(func(t *Task) { t.Kind = "" }), "without its body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task, err := DecodeTask([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecodeTask = %+v, %v; want an error with %q", task, err, tt.want)
			}
		})
	}
}

// DecodeResult is the gate for result messages: another wire version, ids that are not
// subject tokens and negative counts are refused, naming what is wrong.
func TestDecodeResultRefuses(t *testing.T) {
	tests := []struct{ data, want string }{
		{`{"v":3,"run":"r","task":"t"}`, "wire version 3"},
		{`{"run":"r","task":"t"}`, "wire version 0"},
		{`nope`, "decode result"},
		{`{"v":2,"run":"r.x","task":"t"}`, "bad run"},
		{`{"v":2,"run":"r","task":""}`, "task id"},
		{`{"v":2,"run":"r","task":"t","bytes":-1}`, "bytes is -1"},
		{`{"v":2,"run":"r","task":"t","files":-3}`, "files is -3"},
		{`{"v":2,"run":"r","task":"t","skipped":{"fifo":-1}}`, "skipped fifo is -1"},
	}
	for _, tt := range tests {
		if r, err := DecodeResult([]byte(tt.data)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeResult(%s) = %+v, %v; want an error with %q", tt.data, r, err, tt.want)
		}
	}
}

// FuzzDecodeResult: results come from the network. DecodeResult never panics, and what it
// accepts has this wire version, ids that are subject tokens, no negative count, and an
// encoding that decodes and encodes to the same bytes.
func FuzzDecodeResult(f *testing.F) {
	r := &Result{Version: Version, Run: "run1", Task: "copy-0001", Kind: KindCopyPrefix, Final: true, Files: 3, Bytes: 9,
		Warnings: []string{"w"}, Skipped: map[string]int64{"fifo": 1}, Duration: time.Second}
	data, _ := Marshal(r)
	f.Add(data)
	for _, s := range []string{"", "{}", "null", `{"v":2,"run":"r","task":"t","rows":-1}`, `{"v":2,"run":"r","task":"t","skipped":{"":0}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeResult(data)
		if err != nil {
			if r != nil {
				t.Fatalf("an error with a result: %v", err)
			}
			return
		}
		if field, n := r.negativeCount(); r.Version != Version || !ValidToken(r.Run) || !ValidToken(r.Task) || field != "" {
			t.Fatalf("accepted %+v (%s %d)", r, field, n)
		}
		// Compared as written: an empty list or map is left out, and comes back as nil.
		once, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeResult(once)
		if err != nil {
			t.Fatalf("decode what it wrote: %v\n%s", err, once)
		}
		if twice, err := Marshal(back); err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("round trip:\n%s\n%s (%v)", once, twice, err)
		}
	})
}

// FuzzDecodeProgress: progress messages come from the network. DecodeProgress never panics,
// and what it accepts names its run and task by subject tokens, counts no negative bytes, and
// encodes back to itself.
func FuzzDecodeProgress(f *testing.F) {
	for _, s := range []string{`{"v":2,"run":"r","task":"t","bytes":5}`, `{"v":2,"run":"r","task":"t","bytes":-5}`, "{}", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeProgress(data)
		if err != nil {
			return
		}
		if p.Version != Version || !ValidToken(p.Run) || !ValidToken(p.Task) || p.Bytes < 0 {
			t.Fatalf("accepted %+v", p)
		}
		again, err := Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := DecodeProgress(again); err != nil || *back != *p {
			t.Fatalf("round trip: %+v, %v; want %+v", back, err, p)
		}
	})
}

// FuzzDecodeRun: run records are read from the key-value bucket any coordinator writes to.
// DecodeRun never panics, accepts only this version, and what it accepts encodes to a record
// that decodes and encodes to the same bytes.
func FuzzDecodeRun(f *testing.F) {
	rec := &RunRecord{Version: Version, ID: "20240101T000000-abcd", Kind: "backup", State: RunRunning,
		Started: time.Unix(1700000000, 5).UTC(), Options: json.RawMessage(`{"compress": true}`), Generation: 2}
	data, _ := json.Marshal(rec)
	f.Add(data)
	for _, s := range []string{"", "{}", `{"v":2,"started":"not a time"}`, `{"v":2,"options":[1, 2]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := DecodeRun(data)
		if err != nil {
			return
		}
		if rec.Version != Version {
			t.Fatalf("accepted version %d", rec.Version)
		}
		once, err := json.Marshal(rec)
		if err != nil {
			return // a time json cannot write back (a year past 9999): nothing this tool writes
		}
		back, err := DecodeRun(once)
		if err != nil {
			t.Fatalf("decode what it wrote: %v\n%s", err, once)
		}
		twice, err := json.Marshal(back)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("round trip:\n%s\n%s (%v)", once, twice, err)
		}
	})
}

// Every subject a run uses falls inside its stream's filter and its own run-wide filter, and
// the advisories name the workers' consumer on the tasks stream.
func TestSubjects(t *testing.T) {
	tests := []struct {
		subject, filter string
	}{
		{TaskSubject("run1", KindCopyPrefix), TasksSubjects},
		{TaskSubject("run1", KindCopyPrefix), RunTasksSubject("run1")},
		{ResultSubject("run1", "t1"), ResultsSubjects},
		{ResultSubject("run1", "t1"), RunResultsSubject("run1")},
	}
	for _, tt := range tests {
		if !subjectMatches(tt.filter, tt.subject) {
			t.Errorf("%s is not matched by %s", tt.subject, tt.filter)
		}
	}
	if subjectMatches(RunTasksSubject("run1"), TaskSubject("run10", KindCopyPrefix)) {
		t.Error("one run's filter matches another run's tasks")
	}
	for _, adv := range []string{MaxDeliveriesAdvisory, TerminatedAdvisory} {
		if !strings.HasSuffix(adv, "."+StreamTasks+"."+ConsumerWorkers) || !strings.HasPrefix(adv, "$JS.EVENT.ADVISORY.CONSUMER.") {
			t.Errorf("advisory subject %s", adv)
		}
	}
	if MsgID("r", "t") == MsgID("r", "t2") || MsgID("r", "t") != MsgID("r", "t") {
		t.Error("message ids do not identify a run's task")
	}
}

// subjectMatches is NATS subject matching with * and a trailing >.
func subjectMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

func TestValidToken(t *testing.T) {
	for s, want := range map[string]bool{"run-1_x": true, "": false, "a.b": false, "a*": false, ">": false, "a b": false, "a\tb": false, "a\rb": false} {
		if got := ValidToken(s); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestFileListRoundTrip(t *testing.T) {
	entries := []FileEntry{
		{Key: "content/a.json", Size: 3},
		{Key: "media/with\nnewline <&>.png", Size: 0, SHA256: strings.Repeat("0", 64)},
		{Path: "files/media/x", Size: 1 << 33, SHA256: strings.Repeat("f", 64)},
		// Names are bytes, not text: one that is not UTF-8 must come back unchanged.
		{Key: "media/caf\xe9\xff.png", Stored: "files/media/caf%E9%FF.png", Size: 2},
		{Path: "files/media/\x80\\x", Size: 5, SHA256: strings.Repeat("1", 64)},
		// A copy of a backup reads such a name where the backup stores it, and links it from
		// where an earlier backup does.
		{Key: "d/inv\xffutf8.txt", Path: "files/d/inv\xffutf8.txt", Stored: "files/d/inv\xffutf8.txt", Reuse: "backup_1/files/d/inv\xffutf8.txt", Size: 1},
	}
	var b strings.Builder
	w := NewFileListWriter(&b)
	for _, e := range entries {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []FileEntry
	if err := ReadFileList(strings.NewReader(b.String()), func(e FileEntry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, entries) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, entries)
	}
	err := ReadFileList(strings.NewReader(b.String()+"{broken\n"), func(FileEntry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "entry 7") {
		t.Fatalf("a broken line: err = %v, want it to name entry 7", err)
	}
}

// FuzzDecodeTask: task messages come from the network. DecodeTask never panics, and what it
// accepts is a task a worker can act on: this wire version, ids that are subject tokens, the
// body its kind needs, and an encoding that decodes back to the same task.
func FuzzDecodeTask(f *testing.F) {
	for _, task := range []*Task{exportTask(), copyTask()} {
		data, _ := Marshal(task)
		f.Add(data)
	}
	for _, s := range []string{
		"", "{}", "null", "[]", `{"v":2}`, `{"v":3,"run":"r","id":"t","kind":"copy-prefix","copy":{}}`,
		`{"v":2,"run":"r","id":"t","kind":"copy-prefix","copy":{}}`, `{"v":2,"run":"r.x","id":"t","kind":"export-model","export":{}}`,
		`{"v":2,"run":"r","id":"t","kind":"export-model","export":{"lo":-9223372036854775808,"has_lo":true}}`,
		`{"v":2,"run":"r","id":"t","kind":"copy-prefix","copy":null}`, `{"v":1e400}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := DecodeTask(data)
		if err != nil {
			if task != nil {
				t.Fatalf("an error with a task: %v", err)
			}
			return
		}
		if task.Version != Version || !ValidToken(task.Run) || !ValidToken(task.ID) {
			t.Fatalf("accepted %+v", task)
		}
		switch task.Kind {
		case KindExportModel:
			if task.Export == nil {
				t.Fatal("export task without its body")
			}
		case KindCopyPrefix, KindRestorePrefix:
			if task.Copy == nil {
				t.Fatal("copy task without its body")
			}
		default:
			t.Fatalf("accepted kind %q", task.Kind)
		}
		again, err := Marshal(task)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeTask(again)
		if err != nil || !reflect.DeepEqual(back, task) {
			t.Fatalf("re-encoding changed the task: %+v, %v", back, err)
		}
	})
}
