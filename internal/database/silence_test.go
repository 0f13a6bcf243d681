package database

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/webnovel/webnovel-backup/internal/pgtest"
	"github.com/webnovel/webnovel-backup/internal/platform"
	"github.com/webnovel/webnovel-backup/internal/proctest"
)

// TestSilenceFailsAFrozenServer: a server that stops answering (every connection carries
// nothing more, new ones are taken and never answered) fails the statements waiting on it once
// the silence limit passes, with ErrDatabaseSilent, instead of holding them for ever; so does
// the next statement, on a new connection.
func TestSilenceFailsAFrozenServer(t *testing.T) {
	p, u := proctest.ProxyURL(t, pgtest.URL(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := OpenWith(ctx, u.String(), Options{Silence: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.pool.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("before the freeze: %v", err)
	}
	p.Freeze(0)
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

// TestSessionWorking: the probe tells a session running a statement from an idle one, and
// takes a pid the server does not know (a pooler's) as no sign of a frozen server.
func TestSessionWorking(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	idle, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(ctx)
	if sessionWorking(cfg, idle.PgConn().PID(), 10*time.Second) {
		t.Error("an idle session is taken as working")
	}
	busy, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(ctx)
	sleeping, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { busy.Exec(sleeping, "SELECT pg_sleep(60)"); close(done) }()
	working := false
	for deadline := time.Now().Add(30 * time.Second); !working && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		working = sessionWorking(cfg, busy.PgConn().PID(), 10*time.Second)
	}
	stop()
	<-done
	if !working {
		t.Error("a session running pg_sleep is not taken as working")
	}
	if !sessionWorking(cfg, 1<<31-1, 10*time.Second) {
		t.Error("a pid the server does not know (a pooler's) is taken as a frozen server")
	}
}
