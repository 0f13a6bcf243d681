package proctest

import (
	"net"
	"testing"
)

// SilentListener listens on 127.0.0.1, accepts every connection and never answers: a peer
// that is up but hung. It returns the address; the listener and what it accepted are closed
// when the test ends.
func SilentListener(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-accepted })
	return ln.Addr().String()
}
