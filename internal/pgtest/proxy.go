package pgtest

import (
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy on loopback in front of a test's PostgreSQL server. It counts the
// connections it takes and can stop carrying data while keeping both ends open, as a frozen
// server, or a proxy or firewall that stopped forwarding, does: the failures no real server
// can be asked for at a chosen moment.
type Proxy struct {
	// URL is the database URL given to NewProxy, through the proxy.
	URL string
	// Addr is the proxy's host:port.
	Addr string

	accepted   atomic.Int64
	stallAfter int64 // a connection carries nothing more once its client sent this (0: never)
	mu         sync.Mutex
	frozen     bool
	closed     chan struct{} // closed at cleanup: every held copy ends
}

// ProxyOption shapes a Proxy.
type ProxyOption func(*Proxy)

// StallAfter makes each connection carry nothing more, either way, once its client has sent n
// bytes.
func StallAfter(n int64) ProxyOption { return func(p *Proxy) { p.stallAfter = n } }

// NewProxy starts a proxy in front of the server dbURL names; it stops at the test's cleanup.
func NewProxy(t testing.TB, dbURL string, opts ...ProxyOption) *Proxy {
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
	p := &Proxy{Addr: l.Addr().String(), closed: make(chan struct{})}
	for _, o := range opts {
		o(p)
	}
	u.Host = p.Addr
	p.URL = u.String()
	var wg sync.WaitGroup
	t.Cleanup(func() { close(p.closed); l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			wg.Add(1)
			go func() { defer wg.Done(); p.forward(c, server) }()
		}
	}()
	return p
}

// Accepted is the number of connections the proxy has taken.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Freeze stops every connection, open or new, from carrying anything more either way.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// forward carries c to server and back until either end closes or the test ends. Held, a
// connection still reads both ends (their writes do not block) and carries nothing.
func (p *Proxy) forward(c net.Conn, server string) {
	defer c.Close()
	s, err := net.Dial("tcp", server)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { <-p.closed; c.Close(); s.Close() }()
	var sent atomic.Int64            // what the client sent through
	go carry(c, s, func(n int) int { // server to client
		if p.held(sent.Load()) {
			return 0
		}
		return n
	})
	carry(s, c, func(n int) int { // client to server
		k := int64(n)
		if p.held(sent.Load()) {
			k = 0
		} else if p.stallAfter > 0 {
			k = min(k, p.stallAfter-sent.Load())
		}
		sent.Add(k)
		return int(k)
	})
}

// carry copies src to dst, each chunk read cut to what pass allows, until either fails.
func carry(dst, src net.Conn, pass func(n int) int) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if k := pass(n); k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// held reports whether a connection whose client sent sent bytes must carry nothing more.
func (p *Proxy) held(sent int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen || (p.stallAfter > 0 && sent >= p.stallAfter)
}
