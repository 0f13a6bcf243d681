package database

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
)

// TestSilenceFailsAFrozenServer: a server that stops answering (every connection carries
// nothing more, new ones are taken and never answered) fails the statements waiting on it once
// the silence limit passes, with ErrDatabaseSilent, instead of holding them for ever; so does
// the next statement, on a new connection.
func TestSilenceFailsAFrozenServer(t *testing.T) {
	dbURL, p := throughFreezer(t, pgtest.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := OpenWith(ctx, dbURL, Options{Silence: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.pool.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("before the freeze: %v", err)
	}
	p.freeze()
	if _, err = db.CheckSchema(ctx, platform.Default.Models); !errors.Is(err, ErrDatabaseSilent) {
		t.Fatalf("schema check on a frozen server: %v; want ErrDatabaseSilent", err)
	}
	if _, err := db.pool.Exec(ctx, "SELECT 1"); !errors.Is(err, ErrDatabaseSilent) {
		t.Fatalf("next statement on a frozen server: %v; want ErrDatabaseSilent", err)
	}
}

// TestSilenceWaitsForAWorkingServer: a statement the server is working on moves nothing for
// longer than the limit (an index build, a commit's checks; here pg_sleep) and is not a stall.
func TestSilenceWaitsForAWorkingServer(t *testing.T) {
	ctx := context.Background()
	db, err := OpenWith(ctx, pgtest.URL(t), Options{Silence: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.pool.Exec(ctx, "SELECT pg_sleep(1)"); err != nil {
		t.Fatalf("a statement silent for 5 limits: %v", err)
	}
}

// TestSilenceKeepsTheDriversDeadline: a cancelled statement is interrupted when its context
// ends, not when the (longer) silence limit passes.
func TestSilenceKeepsTheDriversDeadline(t *testing.T) {
	db, err := OpenWith(context.Background(), pgtest.URL(t), Options{Silence: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := db.pool.Exec(ctx, "SELECT pg_sleep(600)")
		done <- err
	}()
	select {
	case err = <-done:
		if err == nil || errors.Is(err, ErrDatabaseSilent) {
			t.Fatalf("cancelled statement: %v; want the context's error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a cancelled statement still waits a minute later")
	}
}

func TestCommitOutcome(t *testing.T) {
	lost := errors.New("read tcp: connection reset")
	tests := []struct {
		name    string
		err     error
		unknown bool
	}{
		{"refused by the server", &pgconn.PgError{Code: "23503", Message: "foreign key"}, false},
		{"never sent", fmt.Errorf("commit: %w", errSafe{lost}), false},
		{"answer lost", lost, true},
		{"silence", &silenceError{limit: time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := commitOutcome(tt.err)
			if errors.Is(got, ErrCommitUnknown) != tt.unknown {
				t.Errorf("commitOutcome(%v) = %v; unknown outcome %v, want %v", tt.err, got, !tt.unknown, tt.unknown)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("commitOutcome(%v) = %v: lost the cause", tt.err, got)
			}
		})
	}
}

// errSafe is an error pgconn.SafeToRetry accepts: the statement was never sent.
type errSafe struct{ error }

func (errSafe) SafeToRetry() bool { return true }

func (e errSafe) Unwrap() error { return e.error }

// freezer is a loopback proxy that can stop forwarding, as a frozen server does: every
// connection, open or new, carries nothing more either way while both ends stay open.
type freezer struct {
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{} // closed at cleanup: the forwarding ends
}

func (f *freezer) freeze() {
	f.mu.Lock()
	f.frozen = true
	f.mu.Unlock()
}

// hold blocks while frozen, until cleanup.
func (f *freezer) hold() {
	f.mu.Lock()
	frozen := f.frozen
	f.mu.Unlock()
	if frozen {
		<-f.thaw
	}
}

// throughFreezer returns dbURL through a freezer on loopback.
func throughFreezer(t *testing.T, dbURL string) (string, *freezer) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	server := u.Host
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{thaw: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { close(f.thaw); l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); f.forward(c, server) }()
		}
	}()
	u.Host = l.Addr().String()
	return u.String(), f
}

// forward carries c to server and back until either end closes or the freezer thaws at
// cleanup.
func (f *freezer) forward(c net.Conn, server string) {
	defer c.Close()
	s, err := net.Dial("tcp", server)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { <-f.thaw; c.Close(); s.Close() }()
	go f.copy(s, c)
	f.copy(c, s)
}

func (f *freezer) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		f.hold()
		n, err := src.Read(buf)
		if n > 0 {
			f.hold()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}
