package proctest

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// FreezingProxy forwards TCP connections from a loopback address to a server until it is
// frozen: then the server's next few bytes still pass and after them nothing more, either
// way, while every connection stays open. It is a server that stops mid-answer while its
// kernel keeps its connections alive (a process stopped, or wedged), which no timeout on the
// connection itself notices.
type FreezingProxy struct {
	// Addr is where the proxy listens.
	Addr string

	ln     net.Listener
	target string
	budget atomic.Int64 // the server's bytes still let through once frozen; -1: not frozen
	done   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
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

// Freeze lets the server's next n bytes through, then stops every connection dead.
func (p *FreezingProxy) Freeze(n int64) { p.budget.Store(n) }

func (p *FreezingProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, true)
		go p.pipe(c, s, false)
	}
}

// pipe copies from src to dst; fromServer bytes count against a frozen proxy's budget, and
// once it is spent (or, the other way, once frozen at all) the copy waits for the end.
func (p *FreezingProxy) pipe(dst, src net.Conn, fromServer bool) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			allowed := n
			if b := p.budget.Load(); b >= 0 {
				if !fromServer {
					allowed = 0
				} else {
					allowed = int(min(int64(n), b))
					p.budget.Add(-int64(allowed))
				}
			}
			if _, werr := dst.Write(buf[:allowed]); werr != nil {
				return
			}
			if allowed < n {
				<-p.done // frozen: hold the connection, say nothing
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
