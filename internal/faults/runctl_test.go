//go:build unix

package faults

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/s3test"
	"github.com/webnovel/webnovel-backup/messages"
	"github.com/webnovel/webnovel-backup/storage"
)

// runHeartbeat is the run heartbeat of the processes of these tests (WNB_TEST_RUN_HEARTBEAT):
// a killed coordinator's run is abandoned three heartbeats later.
const runHeartbeat = 200 * time.Millisecond

// runEnv is the environment of a coordinator with a short run heartbeat, halted at a phase
// (WNB_TEST_HALT) when halt is not empty.
func runEnv(base []string, halt string) []string {
	env := append(slices.Clone(base), "WNB_TEST_RUN_HEARTBEAT="+runHeartbeat.String())
	if halt != "" {
		env = append(env, "WNB_TEST_HALT="+halt)
	}
	return env
}

// haltAndKill waits until coord reaches its halt point, kills it with SIGKILL, and waits
// until its run shows as abandoned. It returns the run's record.
func haltAndKill(t *testing.T, ctx context.Context, mon *monitor, coord *proctest.Proc, point string) *messages.RunRecord {
	t.Helper()
	waitFor(t, ctx, "the coordinator to halt at "+point, func() bool {
		if coord.Exited() {
			t.Fatalf("the coordinator ended before halting at %s:\n%s", point, lastLines(coord.Stderr(), 10))
		}
		return strings.Contains(coord.Stderr(), "WNB_TEST_HALT reached "+point)
	})
	coord.Kill()
	messages.RunHeartbeat = runHeartbeat
	var rec *messages.RunRecord
	waitFor(t, ctx, "the killed coordinator's run to be abandoned", func() bool {
		rec = mon.onlyRun(ctx)
		return rec != nil && rec.Shown(time.Now()) == messages.RunAbandoned
	})
	return rec
}

// onlyRun returns the one run in the registry, or nil while there is none.
func (m *monitor) onlyRun(ctx context.Context) *messages.RunRecord {
	m.t.Helper()
	kv, err := m.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		return nil
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) == 0 {
		return nil
	}
	if len(keys) > 1 {
		m.t.Fatalf("want one run in the registry, got %v", keys)
	}
	return m.run(ctx, keys[0])
}

// run reads a run's record.
func (m *monitor) run(ctx context.Context, id string) *messages.RunRecord {
	m.t.Helper()
	kv, err := m.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		m.t.Fatalf("open run registry: %v", err)
	}
	e, err := kv.Get(ctx, id)
	if err != nil {
		m.t.Fatalf("read run %s: %v", id, err)
	}
	rec, err := messages.DecodeRun(e.Value())
	if err != nil {
		m.t.Fatal(err)
	}
	return rec
}

// A coordinator killed (SIGKILL) in each phase of a backup is resumed by `backup --resume` to
// a complete backup that verifies; nothing of the dead run is left beside it: no staging
// area, no half-published backup, no partial archive.
func TestResumeAfterKillInEachPhase(t *testing.T) {
	cases := []struct {
		phase    string
		s3       bool
		compress bool
		// compression is --compression (with compress).
		compression string
		// cutRemoval deletes the staging area's index after the kill, as a removal of the
		// staging area cut short by the kill leaves it.
		cutRemoval bool
	}{
		{phase: "plan"},
		{phase: "export"},
		{phase: "copy"},
		{phase: "assemble"},
		{phase: "publish"},
		{phase: "archive", compress: true},
		{phase: "plan", s3: true},
		{phase: "publish", s3: true},
		{phase: "archive", s3: true, compress: true},
		{phase: "archive", compress: true, compression: "zstd"},
		{phase: "copy", compress: true, compression: "zstd"},
		{phase: "archive", s3: true, compress: true, compression: "none"},
		{phase: "unstage", s3: true, cutRemoval: true},
		{phase: "unstage", s3: true, compress: true, cutRemoval: true},
	}
	for _, tc := range cases {
		name := tc.phase
		if tc.s3 {
			name += "-s3"
		}
		if tc.compress && tc.phase != "archive" {
			name += "-compress"
		}
		if tc.compression != "" {
			name += "-" + tc.compression
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			sc := newScene(t)
			mon := newMonitor(t, sc.srv.URL())
			p, bin, env, backups := sc.p, sc.bin, sc.env, sc.backups
			var s3 *s3test.Server
			if tc.s3 {
				s3 = s3test.Start(t, nil, "backups")
				backups = s3.URL("backups", "nightly", "")
			}
			extra := []string{}
			if tc.compress {
				extra = append(extra, "--compress")
			}
			if tc.compression != "" {
				extra = append(extra, "--compression", tc.compression)
			}
			proctest.StartWorker(t, bin, env, "--name", "w1", "--concurrency", "2")
			coord := proctest.Start(t, bin, runEnv(env, tc.phase), backupArgs(backups, extra...)...)
			rec := haltAndKill(t, ctx, mon, coord, tc.phase)
			if tc.cutRemoval {
				cutStaging(t, ctx, rec.Staging)
			}

			start := time.Now()
			resumed := proctest.Start(t, bin, runEnv(env, ""), "backup", "--workers", "0", "--resume", rec.ID, "-v")
			path := waitBackup(t, ctx, resumed)
			t.Logf("killed in %s, resumed in %s: %s", tc.phase, time.Since(start).Round(time.Millisecond), path)
			after := mon.run(ctx, rec.ID)
			if rec.Publishing != "" && trimmed(backupBase(path)) != rec.Publishing {
				t.Errorf("the resume published %s, not %s where its predecessor had started", path, rec.Publishing)
			}
			if after.State != messages.RunComplete || after.Path != path || after.Generation != rec.Generation+1 {
				t.Errorf("record after the resume: state %s, path %s, generation %d; want complete, %s, %d",
					after.State, after.Path, after.Generation, path, rec.Generation+1)
			}
			local := path
			if tc.s3 {
				local = download(t, ctx, backups, path)
			}
			verifyBackup(t, bin, local, p.Files)
			assertOnlyBackup(t, ctx, backups, path)
		})
	}
}

// Two `backup --resume` of one abandoned run at once: one claims the run, the other is
// refused naming the holder, and the winner's backup completes and verifies (the loser
// deleted nothing).
func TestConcurrentResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	sc := newScene(t)
	mon := newMonitor(t, sc.srv.URL())
	p, bin, env, backups := sc.p, sc.bin, sc.env, sc.backups

	proctest.StartWorker(t, bin, env, "--name", "w1", "--concurrency", "2")
	coord := proctest.Start(t, bin, runEnv(env, "copy"), backupArgs(backups)...)
	rec := haltAndKill(t, ctx, mon, coord, "copy")

	args := []string{"backup", "--workers", "0", "--resume", rec.ID, "-v"}
	a := proctest.Start(t, bin, runEnv(env, ""), args...)
	b := proctest.Start(t, bin, runEnv(env, ""), args...)
	codeA, errA := a.Wait(ctx)
	codeB, errB := b.Wait(ctx)
	if errA != nil || errB != nil {
		t.Fatalf("the resumes did not end: %v, %v", errA, errB)
	}
	winner, loser := a, b
	if codeA != 0 {
		winner, loser = b, a
	}
	if winner.ExitCode() != 0 || loser.ExitCode() == 0 {
		t.Fatalf("exit codes %d and %d: want one resume to win and one to be refused", codeA, codeB)
	}
	refusal := lastLines(loser.Stderr(), 1)
	t.Logf("refused: %s", refusal)
	for _, want := range []string{"held by another coordinator", fmt.Sprintf("pid %d", winner.Pid())} {
		if !strings.Contains(refusal, want) {
			t.Errorf("the refusal %q does not say %q", refusal, want)
		}
	}
	path := waitBackup(t, ctx, winner)
	verifyBackup(t, bin, path, p.Files)
	assertOnlyBackup(t, ctx, backups, path)
}

// A task that arrives after its run has moved on (a late redelivery, or a raw publish) is
// refused by the worker with a final failure result naming the run's state, and writes
// nothing: the run's staging folder is not recreated. The run is complete (a real backup), or
// failed, or claimed by a resume since the task was published (records as a coordinator
// writes them).
func TestLateTaskIntoEndedRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sc := newScene(t)
	mon := newMonitor(t, sc.srv.URL())
	bin, env, backups := sc.bin, sc.env, sc.backups

	proctest.StartWorker(t, bin, env, "--name", "w1", "--concurrency", "2")
	coord := proctest.Start(t, bin, env, backupArgs(backups, "--skip-files")...)
	path := waitBackup(t, ctx, coord)
	done := mon.onlyRun(ctx)

	for _, tc := range []struct {
		name    string
		rec     *messages.RunRecord // nil: the finished backup's record
		taskGen int
		want    string
	}{
		{"complete", nil, 0, "is complete"},
		{"failed", &messages.RunRecord{State: messages.RunFailed}, 0, "is failed"},
		{"claimed", &messages.RunRecord{State: messages.RunRunning, Generation: 2, Coordinator: "other-host pid 9"}, 1, "generation moved on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := done
			if tc.rec != nil {
				rec = tc.rec
				rec.ID, rec.Kind, rec.Version = "late-"+tc.name, "backup", messages.Version
				rec.Heartbeat, rec.Database = time.Now().UTC(), done.Database
				mon.putRun(ctx, rec)
			}
			staging := layout.StagingPath(backups, rec.ID)
			res := lateTask(t, ctx, mon, rec, staging, tc.taskGen)
			t.Logf("refused: %s (attempt %d, worker %s)", res.Error, res.Attempt, res.Worker)
			if res.OK() || !strings.Contains(res.Error, "run "+rec.ID) || !strings.Contains(res.Error, tc.want) {
				t.Errorf("late task result: ok %v, error %q; want refused saying %q", res.OK(), res.Error, tc.want)
			}
			if _, err := os.Stat(staging); !os.IsNotExist(err) {
				t.Errorf("the late task recreated the run's staging folder %s (%v)", staging, err)
			}
		})
	}
	if got := backupNames(t, backups); len(got) != 1 || got[0] != path {
		t.Errorf("backup folder holds %v, want only %s", got, path)
	}
}

// putRun writes a run record as a coordinator would.
func (m *monitor) putRun(ctx context.Context, rec *messages.RunRecord) {
	m.t.Helper()
	kv, err := m.js.KeyValue(ctx, messages.RunsBucket)
	if err != nil {
		m.t.Fatalf("open run registry: %v", err)
	}
	data, err := messages.Marshal(rec)
	if err != nil {
		m.t.Fatal(err)
	}
	if _, err := kv.Put(ctx, rec.ID, data); err != nil {
		m.t.Fatalf("write run %s: %v", rec.ID, err)
	}
}

// lateTask publishes an export task of generation gen into rec's run, writing into staging,
// and returns its final result.
func lateTask(t *testing.T, ctx context.Context, mon *monitor, rec *messages.RunRecord, staging string, gen int) *messages.Result {
	t.Helper()
	task := &messages.Task{Version: messages.Version, Run: rec.ID, ID: "export-late-0000", Kind: messages.KindExportModel,
		Dest: staging, Generation: gen,
		Export: &messages.ExportTask{Database: rec.Database, Snapshot: "gone", Model: "books.Book", Whole: true,
			Output: ".wnb/exports/export-late-0000.json"}}
	data, err := messages.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mon.js.Publish(ctx, messages.TaskSubject(rec.ID, task.Kind), data); err != nil {
		t.Fatal(err)
	}
	var res *messages.Result
	waitFor(t, ctx, "the late task's result", func() bool {
		res = lastResult(ctx, mon, rec.ID, task.ID)
		return res != nil && res.Final
	})
	return res
}

// lastResult reads the latest result of one task, nil while there is none.
func lastResult(ctx context.Context, mon *monitor, run, task string) *messages.Result {
	s, err := mon.js.Stream(ctx, messages.StreamResults)
	if err != nil {
		return nil
	}
	m, err := s.GetLastMsgForSubject(ctx, messages.ResultSubject(run, task))
	if err != nil {
		return nil
	}
	r, err := messages.DecodeResult(m.Data)
	if err != nil {
		return nil
	}
	return r
}

// cutStaging deletes the index files of a staging area (the metadata and SHA256SUMS, which a
// removal deletes first, in key order).
func cutStaging(t *testing.T, ctx context.Context, staging string) {
	t.Helper()
	b, err := storage.Open(ctx, staging)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, key := range []string{layout.FileMetadata, layout.FileSums} {
		if err := b.Remove(ctx, key); err != nil {
			t.Fatalf("cut the staging area short: %v", err)
		}
	}
}

// assertOnlyBackup checks that the backup folder (local or S3) holds the backup at path and
// nothing else: no staging area, no other backup_ entry, no partial archive.
func assertOnlyBackup(t *testing.T, ctx context.Context, backups, path string) {
	t.Helper()
	b, err := storage.Open(ctx, backups)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tops := map[string]bool{}
	err = b.Walk(ctx, "", func(o storage.Object) error {
		top, _, _ := strings.Cut(o.Key, "/")
		tops[top] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := backupBase(path)
	delete(tops, layout.ObjectsDir) // the object store, shared by a destination's backups
	if len(tops) != 1 || !tops[want] {
		t.Errorf("the backup folder holds %v, want only %s", slices.Sorted(maps.Keys(tops)), want)
	}
}

// backupBase is the name of a backup (folder or archive) from its local path or URL.
func backupBase(path string) string {
	path, _, _ = strings.Cut(path, "?")
	return path[strings.LastIndex(path, "/")+1:]
}

// download copies an S3 backup (a prefix, or a .tar.gz object) into a local folder and
// returns its local path. The destination's object store comes along, beside the backup as
// on S3, so that a backup whose files are there verifies.
func download(t *testing.T, ctx context.Context, backups, path string) string {
	t.Helper()
	dir := t.TempDir()
	root, err := storage.Open(ctx, backups)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	name := backupBase(path)
	err = root.Walk(ctx, "", func(o storage.Object) error {
		if o.Key != name && !strings.HasPrefix(o.Key, name+"/") && !strings.HasPrefix(o.Key, layout.ObjectsDir+"/") {
			return nil
		}
		r, obj, err := root.Open(ctx, o.Key)
		if err != nil {
			return err
		}
		defer r.Close()
		local := filepath.Join(dir, filepath.FromSlash(o.Key))
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return err
		}
		mode := obj.Mode
		if mode == 0 {
			mode = 0o644
		}
		f, err := os.OpenFile(local, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		t.Fatalf("download %s: %v", path, err)
	}
	return filepath.Join(dir, name)
}

// trimmed is a backup's name without its archive extension.
func trimmed(name string) string {
	base, _ := layout.TrimArchiveExt(name)
	return base
}
