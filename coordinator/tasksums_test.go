package coordinator

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// taskSums reads each copy task's list when it is told the task finished (a resumed run's
// finished tasks at once), in any order, into the manifest and the file index; the files'
// summary comes out in task order whatever the order the tasks finished in.
func TestTaskSums(t *testing.T) {
	ctx := context.Background()
	stage := testStage(t)
	sum := strings.Repeat("cd", 32)
	var tasks []*messages.Task
	for i, name := range []string{"a", "b", "c"} {
		task := &messages.Task{ID: "copy-" + name, Copy: &messages.CopyTask{Sums: ".wnb/sums/" + name + ".jsonl"}}
		tasks = append(tasks, task)
		var list strings.Builder
		w := messages.NewFileListWriter(&list)
		if err := w.Add(messages.FileEntry{Path: layout.FilesDir + "/" + name, Key: name, SHA256: sum, Mode: 0o600, Changed: i != 1}); err != nil || w.Flush() != nil {
			t.Fatal(err)
		}
		if _, err := stage.Bucket().Put(ctx, task.Copy.Sums, strings.NewReader(list.String()), storage.Object{}); err != nil {
			t.Fatal(err)
		}
	}
	tasks = append(tasks, &messages.Task{ID: "export"}) // no list of its own
	r := &backupRun{stage: stage, c: &Coordinator{}, tasks: tasks, done: map[string]*messages.Result{"copy-b": {Task: "copy-b"}}}
	ts, err := r.startTaskSums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.close()
	ts.arrived(tasks[3])
	ts.arrived(tasks[2])
	ts.arrived(tasks[0])
	if err := ts.wait(); err != nil {
		t.Fatal(err)
	}
	var paths []string
	if err := ts.index.Each(func(e messages.FileEntry) error { paths = append(paths, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"files/a", "files/b", "files/c"}; !slices.Equal(paths, want) {
		t.Fatalf("index %v, want %v", paths, want)
	}
	var files layout.FilesSummary
	ts.mergeFiles(tasks, &files)
	if !slices.Equal(files.ChangedDuringBackup, []string{"files/a", "files/c"}) || !slices.Equal(files.Modes["0600"], []string{"files/a", "files/b", "files/c"}) {
		t.Fatalf("changed %v, modes %v: want a and c changed, a b c in 0600, in task order", files.ChangedDuringBackup, files.Modes)
	}
}

// A task whose list cannot be read fails the reading, naming the task; the lists that arrive
// after it are drained, not read, so nothing blocks the tasks still reporting.
func TestTaskSumsFailure(t *testing.T) {
	ctx := context.Background()
	stage := testStage(t)
	var tasks []*messages.Task
	for _, name := range []string{"lost", "b", "c"} {
		tasks = append(tasks, &messages.Task{ID: "copy-" + name, Copy: &messages.CopyTask{Sums: ".wnb/sums/" + name + ".jsonl"}})
	}
	r := &backupRun{stage: stage, c: &Coordinator{}, tasks: tasks, done: map[string]*messages.Result{}}
	ts, err := r.startTaskSums(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.close()
	for _, task := range tasks { // none of the lists exists; the first failure is the error
		ts.arrived(task)
	}
	err = ts.wait()
	if err == nil || !strings.Contains(err.Error(), "copy-lost") {
		t.Fatalf("wait: %v, want the failure of task copy-lost", err)
	}
}
