package proctest

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// FreezingProxy forwards TCP connections from a loopback address to a server until it is
// frozen: then the server's next few bytes still pass and after them nothing more, either
// way, while every connection stays open. It is a server that stops mid-answer while its
// kernel keeps its connections alive (a process stopped, or wedged), which no timeout on the
// connection itself notices. With StallAfter, each connection stops so on its own once its
// client has sent that much (a proxy or firewall that stopped forwarding one connection). It
// counts the connections it takes.
type FreezingProxy struct {
	// Addr is where the proxy listens.
	Addr string

	ln         net.Listener
	target     string
	budget     atomic.Int64 // the server's bytes still let through once frozen; -1: not frozen
	stallAfter atomic.Int64 // a connection's client bytes before it stops; 0: never
	accepted   atomic.Int64
	done       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      []net.Conn
}

// StartFreezingProxy forwards a loopback listener to target (host:port) until the test ends.
func StartFreezingProxy(t testing.TB, target string) *FreezingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FreezingProxy{Addr: ln.Addr().String(), ln: ln, target: target, done: make(chan struct{})}
	p.budget.Store(-1)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// ProxyURL starts a FreezingProxy to the server that rawURL (postgres://, nats://, …) names
// and returns it with rawURL pointed at it.
func ProxyURL(t testing.TB, rawURL string) (*FreezingProxy, *url.URL) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := StartFreezingProxy(t, u.Host)
	u.Host = p.Addr
	return p, u
}

// Freeze lets the server's next n bytes through, then stops every connection dead.
func (p *FreezingProxy) Freeze(n int64) { p.budget.Store(n) }

// StallAfter stops each connection taken from now on, both ways, once its client has sent n
// bytes through.
func (p *FreezingProxy) StallAfter(n int64) { p.stallAfter.Store(n) }

// Accepted is the number of connections the proxy has taken.
func (p *FreezingProxy) Accepted() int64 { return p.accepted.Load() }

func (p *FreezingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		conn := &proxiedConn{p: p, clientBudget: p.stallAfter.Load()}
		p.wg.Add(2)
		go conn.pipe(s, c, true)
		go conn.pipe(c, s, false)
	}
}

// proxiedConn is one connection through the proxy.
type proxiedConn struct {
	p            *FreezingProxy
	clientBudget int64       // the client's bytes still let through; 0: no limit
	stalled      atomic.Bool // the client's budget is spent
	mu           sync.Mutex
}

// allowed is how many of n bytes read from one end may pass now.
func (c *proxiedConn) allowed(n int, fromServer bool) int {
	if c.stalled.Load() {
		return 0
	}
	if b := c.p.budget.Load(); b >= 0 {
		if !fromServer {
			return 0
		}
		k := int(min(int64(n), b))
		c.p.budget.Add(-int64(k))
		return k
	}
	if fromServer || c.clientBudget == 0 {
		return n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := int(min(int64(n), c.clientBudget))
	if c.clientBudget -= int64(k); c.clientBudget == 0 {
		c.stalled.Store(true)
	}
	return k
}

// pipe copies from src to dst; once what passes is cut short (frozen, stalled) it passes
// nothing more, but still reads src to the end, so that a client that hangs up is seen hanging
// up by the server (which then rolls back what it held).
func (c *proxiedConn) pipe(dst, src net.Conn, fromServer bool) {
	defer c.p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			k := c.allowed(n, fromServer)
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
			if k < n {
				for err == nil {
					_, err = src.Read(buf) // say nothing until src ends
				}
				dst.Close()
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

func (p *FreezingProxy) close() {
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
