package queue

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/webnovel/webnovel-backup/internal/redact"
	"github.com/webnovel/webnovel-backup/messages"
)

func TestAuthOptionsRefuseContradictions(t *testing.T) {
	tests := []struct {
		name string
		auth Auth
		want string
	}{
		{"user without password", Auth{User: "u"}, "password"},
		{"two methods", Auth{User: "u", Password: "p", Token: "t"}, "choose one"},
		{"certificate without key", Auth{CertFile: "c.pem"}, "--nats-key"},
		{"missing nkey file", Auth{NkeyFile: "/nonexistent/seed.nk"}, "/nonexistent/seed.nk"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.auth.Options(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if opts, err := (Auth{Token: "t", CAFile: ca}).Options(); err != nil || len(opts) != 2 {
		t.Fatalf("token + CA: %d options, %v", len(opts), err)
	}
}

// A credentials, key or certificate file that is a FIFO (the NATS client would wait on it for
// ever), a device (read until memory runs out) or larger than such a file is refused at once,
// naming its flag and path.
func TestAuthFilesMustBeSmallRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "creds")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, nil, 0o600); err != nil || os.Truncate(big, maxAuthFileSize+1) != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		auth Auth
		want string
	}{
		{Auth{CredsFile: fifo}, "--nats-creds " + fifo + ": not a regular file"},
		{Auth{NkeyFile: "/dev/zero"}, "--nats-nkey /dev/zero: not a regular file"},
		{Auth{Token: "t", CAFile: big}, "--nats-ca " + big + ": 1048577 bytes"},
		{Auth{CertFile: fifo, KeyFile: big}, "--nats-cert " + fifo},
	} {
		done := make(chan error, 1)
		go func() { _, err := tt.auth.Options(); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%+v: %v, want %q", tt.auth, err, tt.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%+v: still reading after 10s", tt.auth)
		}
	}
}

// A server that wants a user and password lets in only a client that gives them.
func TestUserPasswordAuth(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), Username: "wnb", Password: "s3cret", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	if nc, err := Connect(srv.ClientURL(), "test"); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	}
	opts, err := Auth{User: "wnb", Password: "s3cret"}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := Connect(srv.ClientURL(), "test", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := Ensure(context.Background(), js, Config{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.KeyValue(context.Background(), messages.RunsBucket); err != nil {
		t.Fatalf("run registry not declared: %v", err)
	}
}

// Issue 10 item 16: production's embedded server opens no port; a test's listener demands the
// random credentials that only its URL carries.
func TestEmbeddedListener(t *testing.T) {
	private, err := StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer private.Shutdown()
	if private.Listening() || private.URL() != "" {
		t.Fatalf("embedded server listens: %q", private.URL())
	}
	nc, err := private.Connect("test")
	if err != nil {
		t.Fatalf("in-process connection: %v", err)
	}
	nc.Close()

	shared, err := StartEmbedded(t.TempDir(), WithListener())
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Shutdown()
	u, err := url.Parse(shared.URL())
	if err != nil || u.User == nil || u.Hostname() != "127.0.0.1" {
		t.Fatalf("listener URL %q: %v", shared.URL(), err)
	}
	if nc, err := Connect("nats://"+u.Host, "anonymous", nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a connection without the credentials was accepted")
	}
	nc, err = Connect(shared.URL(), "test")
	if err != nil {
		t.Fatalf("connection with the URL's credentials: %v", err)
	}
	nc.Close()
}

// Issue 10 item 13: a NATS URL that cannot be used never puts its password or token into the
// error (net/url errors quote the whole URL).
func TestConnectErrorHidesCredentials(t *testing.T) {
	const secret = "Qz9secretPass"
	for _, u := range []string{
		"nats://u:" + secret + "@127.0.0.1:notaport",
		"nats://u:" + secret + "%zz@127.0.0.1:4222",
		"nats://" + secret + "@127.0.0.1:bad",
		"nats://127.0.0.1:1,nats://u:" + secret + "@127.0.0.1:x",
		"nats://u:" + secret + "@127.0.0.1:1",
		"nats://u:12/" + secret + "@127.0.0.1:4222", // "/" in a password: not a host to look up
		"nats://u:ab/" + secret + "@127.0.0.1:4222",
	} {
		nc, err := Connect(u, "test", nats.MaxReconnects(0), nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			t.Fatalf("%s: connected", u)
		}
		if strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "connect to nats") {
			t.Errorf("Connect(%q): %v", redact.URL(u), err)
		}
	}
}
