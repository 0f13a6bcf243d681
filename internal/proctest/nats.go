//go:build unix

package proctest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSOptions shape one nats-server. Zero values pick free ports and a temporary store.
type NATSOptions struct {
	// Name is the server name (default "n<port>").
	Name string
	// Port is the client port (default: a free one).
	Port int
	// StoreDir is the JetStream store (default: a temporary folder of the test).
	StoreDir string
	// ClusterName, ClusterPort and Routes make the server a cluster member; Routes are
	// nats-route:// URLs of all members (its own is allowed).
	ClusterName string
	ClusterPort int
	Routes      []string
	// Args are extra nats-server arguments.
	Args []string
	// Ready bounds the wait for JetStream to answer (default 30s).
	Ready time.Duration
}

// NATS is a nats-server process with JetStream, listening on 127.0.0.1.
type NATS struct {
	t    testing.TB
	bin  string
	opts NATSOptions
	args []string
	proc *Proc
}

// StartNATS starts a JetStream server and waits until JetStream answers on it.
func StartNATS(t testing.TB, opts NATSOptions) *NATS {
	t.Helper()
	n := newNATS(t, opts)
	n.start()
	n.WaitReady()
	return n
}

func newNATS(t testing.TB, opts NATSOptions) *NATS {
	t.Helper()
	if opts.Port == 0 {
		opts.Port = FreePort(t)
	}
	if opts.Name == "" {
		opts.Name = "n" + strconv.Itoa(opts.Port)
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	if opts.Ready == 0 {
		opts.Ready = 30 * time.Second
	}
	args := []string{
		"-a", "127.0.0.1", "-p", strconv.Itoa(opts.Port), "-n", opts.Name,
		"-js", "-sd", opts.StoreDir,
	}
	if opts.ClusterName != "" {
		args = append(args,
			"--cluster_name", opts.ClusterName,
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", opts.ClusterPort),
			"--routes", strings.Join(opts.Routes, ","))
	}
	args = append(args, opts.Args...)
	return &NATS{t: t, bin: NATSServerBinary(t), opts: opts, args: args}
}

func (n *NATS) start() {
	n.t.Helper()
	n.proc = Start(n.t, n.bin, nil, n.args...)
}

// StartCluster starts a cluster of size JetStream servers on loopback routes and waits until
// every server answers JetStream requests (the cluster has a meta leader). A server that
// exits while the cluster starts (another process took its port in the moment between
// picking and binding it) makes it start the whole cluster again on new ports, up to three
// times.
func StartCluster(t testing.TB, size int) []*NATS {
	t.Helper()
	if size < 1 {
		t.Fatalf("proctest: cluster of %d servers", size)
	}
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var ns []*NATS
		if ns, err = tryCluster(t, size); err == nil {
			return ns
		}
		t.Logf("proctest: cluster start %d: %v", attempt, err)
	}
	t.Fatalf("proctest: cluster: %v", err)
	return nil
}

// tryCluster starts one cluster on new ports; on failure it kills what it started.
func tryCluster(t testing.TB, size int) ([]*NATS, error) {
	t.Helper()
	ports := make([]int, size)
	routes := make([]string, size)
	for i := range ports {
		ports[i] = FreePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	ns := make([]*NATS, size)
	for i := range ns {
		ns[i] = newNATS(t, NATSOptions{
			Name: fmt.Sprintf("wnb-test-%d", i+1), ClusterName: "wnb-test",
			ClusterPort: ports[i], Routes: routes,
		})
		ns[i].start()
	}
	for _, n := range ns {
		if err := n.waitReady(); err != nil {
			for _, n := range ns {
				n.proc.Kill()
			}
			return nil, fmt.Errorf("nats-server %s: %w", n.opts.Name, err)
		}
	}
	return ns, nil
}

// URLs joins the client URLs of servers with commas, the form nats.Connect and --nats take.
func URLs(ns []*NATS) string {
	urls := make([]string, len(ns))
	for i, n := range ns {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// URL is the server's client URL.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port) }

// Name is the server name.
func (n *NATS) Name() string { return n.opts.Name }

// Proc is the server's current process.
func (n *NATS) Proc() *Proc { return n.proc }

// Kill ends the server with SIGKILL, as a crash would.
func (n *NATS) Kill() { n.proc.Kill() }

// Stop shuts the server down cleanly (SIGTERM), killing it if it takes over 10 seconds.
func (n *NATS) Stop() {
	if err := n.proc.Signal(syscall.SIGTERM); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.proc.Wait(ctx)
	}
	n.proc.Kill()
}

// Restart starts the server again with the same name, ports and store (after Kill or Stop;
// a running server is stopped first) and waits until JetStream answers on it.
func (n *NATS) Restart() {
	n.t.Helper()
	if !n.proc.Exited() {
		n.Stop()
	}
	n.start()
	n.WaitReady()
}

// WaitReady waits until the server accepts connections and answers a JetStream account info
// request, which needs a meta leader in a cluster. It fails the test after opts.Ready, or
// when the server exits first.
func (n *NATS) WaitReady() {
	n.t.Helper()
	if err := n.waitReady(); err != nil {
		n.t.Fatalf("proctest: nats-server %s: %v", n.opts.Name, err)
	}
}

// waitReady is WaitReady returning its failure; a server that exited fails it at once.
func (n *NATS) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.Ready)
	defer cancel()
	// The watcher may first run after this returns and a Restart has replaced n.proc: it
	// watches the process it was started for.
	proc := n.proc
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	err := WaitJetStream(ctx, n.URL())
	if err != nil && proc.Exited() {
		return fmt.Errorf("exited with code %d before JetStream answered", proc.ExitCode())
	}
	return err
}

// WaitJetStream polls url until JetStream answers an account info request or ctx ends.
func WaitJetStream(ctx context.Context, url string) error {
	var last error
	for {
		last = jetStreamReady(ctx, url)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("JetStream not ready at %s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func jetStreamReady(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(actx)
	return err
}
