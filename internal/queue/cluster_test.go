//go:build unix

package queue

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/proctest"
	"github.com/webnovel/webnovel-backup/messages"
)

func TestMain(m *testing.M) { os.Exit(proctest.Main(m)) }

// On a real three-node cluster, streams declared at three replicas stay at three whatever a
// later command asks: a different count is a warning naming the command that changes it, and
// a command that asks for nothing (`runs` without --replicas) neither changes nor warns.
func TestEnsureNeverChangesExistingConfiguration(t *testing.T) {
	cluster := proctest.StartCluster(t, 3)
	js := connectJS(t, proctest.URLs(cluster))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := Ensure(ctx, js, Config{Replicas: 3, AckWait: 30 * time.Second, MaxDeliver: 5}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cfg      Config
		warnings []string // substrings each expected in the log; none expected when empty
	}{
		{"nothing asked", Config{}, nil},
		{"same settings", Config{Replicas: 3, AckWait: 30 * time.Second, MaxDeliver: 5}, nil},
		{"fewer replicas", Config{Replicas: 1}, []string{
			"nats stream edit WNB_TASKS --replicas 1",
			"nats stream edit WNB_RESULTS --replicas 1",
			"nats stream edit KV_" + messages.RunsBucket + " --replicas 1",
			"nats consumer edit WNB_TASKS " + messages.ConsumerWorkers + " --replicas 1",
		}},
		{"other consumer limits", Config{Replicas: 3, AckWait: 2 * time.Second, MaxDeliver: 2}, []string{
			"--wait 2s", "--max-deliver 2",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			tt.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			cons, err := Ensure(ctx, js, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.warnings {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("no warning with %q in:\n%s", w, logs.String())
				}
			}
			if len(tt.warnings) == 0 && logs.Len() > 0 {
				t.Errorf("unexpected warnings:\n%s", logs.String())
			}
			assertUnchanged(ctx, t, js, cons)
		})
	}
}

// assertUnchanged checks the cluster still has what the first Ensure declared.
func assertUnchanged(ctx context.Context, t *testing.T, js jetstream.JetStream, cons jetstream.Consumer) {
	t.Helper()
	for _, name := range []string{messages.StreamTasks, messages.StreamResults, bucketStream(messages.RunsBucket)} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.Replicas != 3 || c.AckWait != 30*time.Second || c.MaxDeliver != 5 {
		t.Errorf("consumer changed: replicas %d, ack wait %s, max deliver %d", c.Replicas, c.AckWait, c.MaxDeliver)
	}
}

func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := Connect(url, "queue-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
