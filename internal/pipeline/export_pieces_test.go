package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/webnovel/webnovel-backup/coordinator"
	"github.com/webnovel/webnovel-backup/internal/demo"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/messages"
)

// busMessages records the task and result messages of every run while the test lasts.
type busMessages struct {
	mu      sync.Mutex
	tasks   []*messages.Task
	results []*messages.Result
}

func watchBus(t *testing.T, s interface{ Conn() *nats.Conn }) *busMessages {
	t.Helper()
	b := &busMessages{}
	for _, subject := range []string{messages.TasksSubjects, messages.ResultsSubjects} {
		sub, err := s.Conn().Subscribe(subject, func(m *nats.Msg) {
			b.mu.Lock()
			defer b.mu.Unlock()
			if task, err := messages.DecodeTask(m.Data); err == nil {
				b.tasks = append(b.tasks, task)
			} else if res, err := messages.DecodeResult(m.Data); err == nil {
				b.results = append(b.results, res)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	if err := s.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExportWritesEachFixtureOnce: a backup whose models are read in many pieces publishes
// one export task per model, the largest first, with the file copies in between; each
// task's output is the model's whole fixture (its sum and size are the published file's),
// so no chunk was ever written beside it and nothing was joined afterwards.
func TestExportWritesEachFixtureOnce(t *testing.T) {
	opts := demo.DefaultOptions()
	p := sqlitePlatform(t, opts)
	s := startSession(t, p, 2, queue.Config{})
	bus := watchBus(t, s.JetStream)
	rep, err := s.Coordinator.Backup(context.Background(), coordinator.BackupOptions{
		DatabaseURL: p.dbURL, StorageURL: p.storage, BackupDir: t.TempDir(), ChunkRows: 4, FilesPerTask: 5,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.JetStream.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	bus.mu.Lock()
	defer bus.mu.Unlock()

	exports := map[string]*messages.Task{} // model label → its task
	var order []*messages.Task
	for _, task := range bus.tasks {
		if task.Run != rep.RunID {
			continue
		}
		order = append(order, task)
		if task.Kind != messages.KindExportModel {
			continue
		}
		if exports[task.Export.Model] != nil {
			t.Errorf("model %s has two export tasks", task.Export.Model)
		}
		exports[task.Export.Model] = task
		if !task.Export.Whole {
			t.Errorf("task %s writes a chunk", task.ID)
		}
	}
	if len(exports) != len(rep.Models) {
		t.Fatalf("%d export tasks for %d models", len(exports), len(rep.Models))
	}
	checkPublishOrder(t, order)

	sums := map[string]string{} // task id → sum of its final result
	for _, res := range bus.results {
		if res.Run == rep.RunID && res.Kind == messages.KindExportModel && res.OK() {
			sums[res.Task] = res.SHA256
		}
	}
	split := 0
	for _, m := range rep.Models {
		task := exports[m.Label]
		if task == nil {
			t.Fatalf("no export task for %s", m.Label)
		}
		if len(task.Export.Pieces) > 1 {
			split++
		}
		data, err := os.ReadFile(filepath.Join(rep.Path, m.File))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := sums[task.ID]; got != hex.EncodeToString(sum[:]) || got != m.SHA256 || m.Bytes != int64(len(data)) {
			t.Errorf("%s: task %s wrote sum %s, the fixture is %x (report %s, %d bytes of %d)", m.Label, task.ID, got, sum, m.SHA256, m.Bytes, len(data))
		}
	}
	if split < 3 {
		t.Fatalf("only %d models read in pieces: the test does not cover them", split)
	}
}

// checkPublishOrder: export tasks go out largest first (most pieces), and a copy task goes
// out before the second export, so that neither kind waits for the other.
func checkPublishOrder(t *testing.T, order []*messages.Task) {
	t.Helper()
	last, copies := -1, 0
	for i, task := range order {
		if task.Kind != messages.KindExportModel {
			copies++
			continue
		}
		n := max(len(task.Export.Pieces), 1)
		if last >= 0 && n > last {
			t.Errorf("export %s (%d pieces) published after a smaller one (%d)", task.ID, n, last)
		}
		last = n
		if i > 0 && copies == 0 {
			t.Errorf("export %s is published at %d, before any copy", task.ID, i)
		}
	}
}
