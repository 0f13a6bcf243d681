// Package queuetest gives tests a real JetStream: an embedded server in a temporary folder,
// stopped when the test ends, with the streams, bucket and workers' consumer declared.
package queuetest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/queue"
)

// Server starts an embedded NATS server with JetStream for the test and returns its URL: a
// loopback listener with random credentials, so other processes of the test can join.
func Server(t testing.TB) string {
	t.Helper()
	emb, err := queue.StartEmbedded(t.TempDir(), queue.WithListener())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	return emb.URL()
}

// Start starts a server, connects to it and declares what the pipeline needs with cfg.
func Start(t testing.TB, cfg queue.Config) (jetstream.JetStream, jetstream.Consumer) {
	t.Helper()
	js := Connect(t, Server(t))
	cons, err := queue.Ensure(context.Background(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return js, cons
}

// Connect connects to the server at url until the test ends.
func Connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := queue.Connect(url, t.Name())
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
