//go:build unix

package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/layout"
)

// A worker killed with SIGKILL while it holds a task: once AckWait runs out the server hands
// the task to another worker, which redoes it, and the backup is complete and verifies.
func TestWorkerKilledMidTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := sharedPlatform(t)
	bin := proctest.Binary(t)
	srv := proctest.StartNATS(t, proctest.NATSOptions{})
	env := p.env(srv.URL())
	mon := newMonitor(t, srv.URL())
	backups := t.TempDir()
	queue := []string{"--ack-wait", "2s"}

	// The doomed worker runs alone, so a task held is a task it holds.
	doomed := proctest.StartWorker(t, bin, env, append(queue, "--name", "doomed", "--concurrency", "1")...)
	coord := proctest.Start(t, bin, env, backupArgs(backups, queue...)...)
	mon.waitHeld(ctx)
	// Kill it while it copies a storage file: a half-written file is left among the files
	// the backup publishes (export outputs are written under the run's working folder).
	waitFor(t, ctx, "the worker to copy a file", func() bool {
		return slices.ContainsFunc(tempFiles(t, backups), func(p string) bool {
			return strings.Contains(p, string(filepath.Separator)+layout.FilesDir+string(filepath.Separator))
		})
	})
	doomed.Kill()
	t.Logf("killed while writing; left behind: %v", tempFiles(t, backups))
	info, err := mon.consumer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending == 0 {
		t.Fatalf("the killed worker held no task (ack pending 0, pending %d): nothing to redeliver", info.NumPending)
	}
	proctest.StartWorker(t, bin, env, append(queue, "--name", "rescuer", "--concurrency", "2")...)

	path := waitBackup(t, ctx, coord)
	verifyBackup(t, bin, path, p.Files)

	// The task the dead worker held was redelivered and redone by the rescuer.
	redone := 0
	for id, r := range mon.results(ctx) {
		if r.Attempt >= 2 {
			redone++
			if r.Worker != "rescuer" || !r.OK() {
				t.Errorf("task %s attempt %d: worker %q, error %q; want done by rescuer", id, r.Attempt, r.Worker, r.Error)
			}
		}
	}
	if redone == 0 {
		t.Error("no task was redelivered after its worker was killed")
	}
}

// A three-node cluster with streams of three replicas loses the tasks stream's leader to
// SIGKILL mid-run: clients reconnect to the survivors, a new leader is elected, and the backup
// completes and verifies.
func TestClusterNodeLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	p := sharedPlatform(t)
	bin := proctest.Binary(t)
	nodes := proctest.StartCluster(t, 3)
	urls := proctest.URLs(nodes)
	env := p.env(urls)
	mon := newMonitor(t, urls)
	backups := t.TempDir()
	queue := []string{"--replicas", "3", "--ack-wait", "5s"}

	proctest.StartWorker(t, bin, env, append(queue, "--name", "w1", "--concurrency", "2")...)
	proctest.StartWorker(t, bin, env, append(queue, "--name", "w2", "--concurrency", "2")...)
	coord := proctest.Start(t, bin, env, backupArgs(backups, queue...)...)
	mon.waitHeld(ctx)

	s, err := mon.js.Stream(ctx, "WNB_TASKS")
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
		t.Fatalf("WNB_TASKS is not replicated on three nodes: %+v", si.Cluster)
	}
	victim := slices.IndexFunc(nodes, func(n *proctest.NATS) bool { return n.Name() == si.Cluster.Leader })
	if victim < 0 {
		t.Fatalf("WNB_TASKS leader %q is none of the cluster's nodes", si.Cluster.Leader)
	}
	t.Logf("killing %s, leader of WNB_TASKS", nodes[victim].Name())
	nodes[victim].Kill()

	path := waitBackup(t, ctx, coord)
	verifyBackup(t, bin, path, p.Files)
}

// Two backups at once on the same workers and the same backup folder: both complete, in
// distinct folders, and both verify.
func TestConcurrentBackups(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := sharedPlatform(t)
	bin := proctest.Binary(t)
	srv := proctest.StartNATS(t, proctest.NATSOptions{})
	env := p.env(srv.URL())
	backups := t.TempDir()

	proctest.StartWorker(t, bin, env, "--name", "w1", "--concurrency", "2")
	proctest.StartWorker(t, bin, env, "--name", "w2", "--concurrency", "2")
	c1 := proctest.Start(t, bin, env, backupArgs(backups)...)
	c2 := proctest.Start(t, bin, env, backupArgs(backups)...)
	p1 := waitBackup(t, ctx, c1)
	p2 := waitBackup(t, ctx, c2)
	if p1 == p2 {
		t.Fatalf("both backups claim %s", p1)
	}
	got := backupNames(t, backups)
	if want := []string{p1, p2}; !sameSet(got, want) {
		t.Errorf("backup folder holds %v, want %v", got, want)
	}
	verifyBackup(t, bin, p1, p.Files)
	verifyBackup(t, bin, p2, p.Files)
}

// A worker whose database does not exist fails its export tasks: the coordinator gives up after
// --max-deliver attempts, exits 1 naming the task and the cause, and leaves no backup.
func TestWorkerWithoutDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := sharedPlatform(t)
	bin := proctest.Binary(t)
	srv := proctest.StartNATS(t, proctest.NATSOptions{})
	env := p.env(srv.URL())
	backups := t.TempDir()
	missing := filepath.Join(t.TempDir(), "gone.sqlite3")
	queue := []string{"--max-deliver", "2"}

	proctest.StartWorker(t, bin, append(env, "DATABASE_URL=sqlite:///"+missing), append(queue, "--name", "lost", "--concurrency", "2")...)
	start := time.Now()
	coord := proctest.Start(t, bin, env, backupArgs(backups, queue...)...)
	bound, cancelBound := context.WithTimeout(ctx, 30*time.Second)
	defer cancelBound()
	code, err := coord.Wait(bound)
	if err != nil {
		t.Fatalf("the coordinator did not give up: %v", err)
	}
	t.Logf("coordinator exited %d after %s", code, time.Since(start).Round(time.Millisecond))
	if code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, coord.Stderr())
	}
	errLine := lastLines(coord.Stderr(), 1)
	for _, want := range []string{"task export-", "failed", missing, "does not exist", "attempt 2 on worker lost"} {
		if !strings.Contains(errLine, want) {
			t.Errorf("error %q does not say %q", errLine, want)
		}
	}
	if got := backupNames(t, backups); len(got) > 0 {
		t.Errorf("a failed backup left %v", got)
	}
	entries, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), layout.StagingPrefix) {
			t.Errorf("a failed backup left its staging folder %s", e.Name())
		}
	}
}

// SIGTERM to a worker holding tasks: it finishes them (grace) or hands them back at once (no
// grace), exits 0, and leaves nothing waiting for AckWait; another worker completes the backup.
func TestWorkerSIGTERM(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace string
	}{
		{"finishes", "25s"},
		{"hands back", "0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			p := sharedPlatform(t)
			bin := proctest.Binary(t)
			srv := proctest.StartNATS(t, proctest.NATSOptions{})
			env := p.env(srv.URL())
			mon := newMonitor(t, srv.URL())
			backups := t.TempDir()

			// The default AckWait (30s) is longer than this test may take: a task the
			// leaving worker abandoned instead of finishing or handing back would stall it.
			leaving := proctest.StartWorker(t, bin, env, "--name", "leaving", "--concurrency", "2", "--shutdown-grace", tc.grace)
			coord := proctest.Start(t, bin, env, backupArgs(backups)...)
			mon.waitHeld(ctx)
			if err := leaving.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exit, cancelExit := context.WithTimeout(ctx, 30*time.Second)
			defer cancelExit()
			code, err := leaving.Wait(exit)
			if err != nil {
				t.Fatalf("the worker did not stop on SIGTERM: %v", err)
			}
			if code != 0 {
				t.Fatalf("the worker exited %d on SIGTERM, want 0", code)
			}
			settle, cancelSettle := context.WithTimeout(ctx, 5*time.Second)
			defer cancelSettle()
			var last any
			waitFor(t, settle, "no task to be held by the stopped worker", func() bool {
				info, err := mon.consumer(ctx)
				if err != nil {
					last = err
					return false
				}
				last = fmt.Sprintf("ack pending %d, redelivered %d, waiting %d, pending %d", info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.NumPending)
				return info.NumAckPending == 0
			}, &last)

			proctest.StartWorker(t, bin, env, "--name", "staying", "--concurrency", "2")
			done, cancelDone := context.WithTimeout(ctx, 25*time.Second)
			defer cancelDone()
			path := waitBackup(t, done, coord)
			verifyBackup(t, bin, path, p.Files)
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
