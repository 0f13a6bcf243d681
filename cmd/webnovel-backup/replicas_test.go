//go:build unix

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/internal/queue"
	"github.com/webnovel/webnovel-backup/messages"
)

// `runs` without --replicas against a real three-node cluster whose streams are at three
// replicas leaves them at three, and says nothing about replicas; with --replicas 1 it warns
// and still changes nothing.
func TestRunsLeavesClusterStreamsAlone(t *testing.T) {
	cluster := proctest.StartCluster(t, 3)
	url := proctest.URLs(cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nc, err := queue.Connect(url, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Ensure(ctx, js, queue.Config{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{[]string{"runs", "--nats", url}, false},
		{[]string{"runs", "--nats", url, "--replicas", "1"}, true},
	} {
		code, out := cli(t, dir, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", tc.args, code, out)
		}
		if warned := strings.Contains(out, "replicas"); warned != tc.warn {
			t.Errorf("%v: warned about replicas %v, want %v:\n%s", tc.args, warned, tc.warn, out)
		}
		for _, name := range []string{messages.StreamTasks, messages.StreamResults} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if r := s.CachedInfo().Config.Replicas; r != 3 {
				t.Errorf("after %v: stream %s has %d replicas, want 3", tc.args, name, r)
			}
		}
	}
}
