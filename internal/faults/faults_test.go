//go:build unix

package faults

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/webnovel/webnovel-backup/internal/layout"
	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/messages"
)

// A worker killed with SIGKILL while it holds a task: once AckWait runs out the server hands
// the task to another worker, which redoes it, and the backup is complete and verifies.
func TestWorkerKilledMidTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sc := newScene(t)
	mon := newMonitor(t, sc.srv.URL())
	p, bin, env, backups := sc.p, sc.bin, sc.env, sc.backups
	queue := []string{"--ack-wait", "2s"}

	// The doomed worker runs alone, so a task held is a task it holds; its copies are slowed
	// so that it is killed in the middle of one, not between two.
	doomed := proctest.StartWorker(t, bin, append(env, "WNB_TEST_COPY_DELAY=50ms"), append(queue, "--name", "doomed", "--concurrency", "1")...)
	coord := proctest.Start(t, bin, env, backupArgs(backups, queue...)...)
	mon.waitHeld(ctx, coord)
	// Kill it while it copies a storage file: a half-written file is left among the files
	// the backup publishes (export outputs are written under the run's working folder).
	waitFor(t, ctx, "the worker to copy a file", func() bool { return copying(t, backups) || coord.Exited() })
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

	// One slow worker while the node is lost, so the run cannot be over by then; a second
	// joins the damaged cluster afterwards.
	coord := proctest.Start(t, bin, env, backupArgs(backups, queue...)...)
	waitFor(t, ctx, "the tasks to be published", func() bool {
		return strings.Contains(coord.Stderr(), `msg="tasks published"`) || coord.Exited()
	})
	proctest.StartWorker(t, bin, env, append(queue, "--name", "w1", "--concurrency", "1")...)
	mon.waitHeld(ctx, coord)

	// Lose the tasks stream's leader: the stream elects another while workers fetch from it.
	tasks, err := mon.js.Stream(ctx, messages.StreamTasks)
	if err != nil {
		t.Fatal(err)
	}
	si, err := tasks.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
		t.Fatalf("%s is not replicated on three nodes: %+v", messages.StreamTasks, si.Cluster)
	}
	victim := slices.IndexFunc(nodes, func(n *proctest.NATS) bool { return n.Name() == si.Cluster.Leader })
	if victim < 0 {
		t.Fatalf("%s leader %q is none of the cluster's nodes", messages.StreamTasks, si.Cluster.Leader)
	}
	nodes[victim].Kill()
	t.Logf("killed %s, leader of %s", nodes[victim].Name(), messages.StreamTasks)
	proctest.StartWorker(t, bin, env, append(queue, "--name", "w2", "--concurrency", "2")...)

	path := waitBackup(t, ctx, coord)
	verifyBackup(t, bin, path, p.Files)
}

// A coordinator and two workers started together on a new three-node cluster all declare the
// replicated streams at once, which the servers may leave unanswered; they retry, and the
// backup completes and verifies.
func TestClusterColdStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	p := sharedPlatform(t)
	bin := proctest.Binary(t)
	nodes := proctest.StartCluster(t, 3)
	env := p.env(proctest.URLs(nodes))
	backups := t.TempDir()
	queue := []string{"--replicas", "3"}

	proctest.StartWorker(t, bin, env, append(queue, "--name", "w1", "--concurrency", "2")...)
	proctest.StartWorker(t, bin, env, append(queue, "--name", "w2", "--concurrency", "2")...)
	coord := proctest.Start(t, bin, env, backupArgs(backups, queue...)...)
	path := waitBackup(t, ctx, coord)
	verifyBackup(t, bin, path, p.Files)
}

// Two backups at once on the same workers and the same backup folder: both complete, in
// distinct folders, and both verify.
func TestConcurrentBackups(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sc := newScene(t)
	p, bin, env, backups := sc.p, sc.bin, sc.env, sc.backups

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
	sc := newScene(t)
	bin, env, backups := sc.bin, sc.env, sc.backups
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
	t.Logf("coordinator exited %d after %s: %s", code, time.Since(start).Round(time.Millisecond), lastLines(coord.Stderr(), 1))
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
	// Nor its staging folder, nor anything else.
	entries, err := os.ReadDir(backups)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("a failed backup left %s in its backup folder", e.Name())
	}
}

// SIGTERM to a worker in the middle of copying files: it finishes its tasks (with a grace
// period) or hands them back at once (without), and exits 0. Nothing is left for AckWait (30s
// here) to recover: another worker completes the backup well before that.
func TestWorkerSIGTERM(t *testing.T) {
	for _, tc := range []struct {
		name     string
		grace    string
		handBack bool
	}{
		{"finishes", "25s", false},
		{"hands back", "0s", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			sc := newScene(t)
			mon := newMonitor(t, sc.srv.URL())
			p, bin, env, backups := sc.p, sc.bin, sc.env, sc.backups

			// The leaving worker copies slowly, so that it still holds tasks when SIGTERM comes
			// (unslowed, it can finish the whole backup before the signal lands).
			slow := append(slices.Clone(env), "WNB_TEST_COPY_DELAY=50ms")
			leaving := proctest.StartWorker(t, bin, slow, "--name", "leaving", "--concurrency", "2", "--shutdown-grace", tc.grace)
			coord := proctest.Start(t, bin, env, backupArgs(backups)...)
			mon.waitHeld(ctx, coord)
			waitFor(t, ctx, "the worker to copy a file", func() bool { return copying(t, backups) || coord.Exited() })
			if coord.Exited() {
				t.Fatalf("the backup ended before the worker was stopped:\n%s", coord.Stderr())
			}
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

			proctest.StartWorker(t, bin, env, "--name", "staying", "--concurrency", "2")
			done, cancelDone := context.WithTimeout(ctx, 20*time.Second)
			defer cancelDone()
			path := waitBackup(t, done, coord)
			verifyBackup(t, bin, path, p.Files)

			handedBack := handBacks(leaving.Stderr())
			results := mon.results(ctx)
			switch {
			case tc.handBack && len(handedBack) == 0:
				t.Errorf("the worker handed back no task:\n%s", leaving.Stderr())
			case !tc.handBack && len(handedBack) > 0:
				t.Errorf("the worker handed back %v instead of finishing them", handedBack)
			case !tc.handBack && !slices.ContainsFunc(mapValues(results), func(r *messages.Result) bool { return r.Worker == "leaving" && r.OK() }):
				t.Errorf("the worker finished no task")
			}
			for _, id := range handedBack {
				r := results[id]
				if r == nil || !r.OK() || r.Worker != "staying" || r.Attempt < 2 {
					t.Errorf("task %s, handed back: result %+v; want done by staying on a later attempt", id, r)
				}
			}
		})
	}
}

// copying reports whether a storage file is being written into a staging folder under dir.
func copying(t *testing.T, dir string) bool {
	return slices.ContainsFunc(tempFiles(t, dir), func(p string) bool {
		return strings.Contains(p, string(filepath.Separator)+layout.FilesDir+string(filepath.Separator))
	})
}

// handBacks returns the run/task ids a worker's log says it handed back on shutdown.
func handBacks(log string) []string {
	var ids []string
	for _, m := range handBackLine.FindAllStringSubmatch(log, -1) {
		ids = append(ids, m[1]+"/"+m[2])
	}
	return ids
}

var handBackLine = regexp.MustCompile(`msg="handing task back on shutdown".* run=(\S+) task=(\S+)`)

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
