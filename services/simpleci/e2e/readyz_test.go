package e2e_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
)

// TestReadyz: /readyz turns 503, naming the failed check, while a service's database
// or a required peer does not answer, and ready again when it does; /healthz stays 200.
func TestReadyz(t *testing.T) {
	t.Run("database", func(t *testing.T) {
		dbURL := pgtest.NewDatabase(t)
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		px := newTCPProxy(t, u.Host)
		u.Host = px.addr
		httpAddr := freeAddr(t)
		start(t, "auth", nil, "serve", "--service", "auth", "--database-url", u.String(), "--grpc", freeAddr(t), "--http", httpAddr,
			"--admin-token-file", filepath.Join(t.TempDir(), "admin-token"))
		base := "http://" + httpAddr
		eventually(t, 60*time.Second, "the auth service to be ready", func() bool { return status(base+"/readyz") == http.StatusOK })

		px.cut()
		cutAt := time.Now()
		var body string
		eventually(t, 10*time.Second, "/readyz to fail naming the database", func() bool {
			var code int
			code, body = get(base + "/readyz")
			return code == http.StatusServiceUnavailable && strings.Contains(body, `"database"`)
		})
		t.Logf("unready %s after the cut: %s", time.Since(cutAt).Round(time.Millisecond), body)
		if code := status(base + "/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz while the database is cut: %d, want 200 (liveness only)", code)
		}

		px.restore()
		eventually(t, 15*time.Second, "/readyz to be ready again", func() bool { return status(base+"/readyz") == http.StatusOK })
	})

	t.Run("peer", func(t *testing.T) {
		authGRPC, logHTTP := freeAddr(t), freeAddr(t)
		env := []string{"SIMPLECI_INTERNAL_TOKEN=int-readyz"}
		start(t, "log", env, "serve", "--service", "log", "--data", t.TempDir(), "--grpc", freeAddr(t), "--http", logHTTP,
			"--auth-addr", authGRPC, "--project-addr", freeAddr(t))
		base := "http://" + logHTTP
		eventually(t, 30*time.Second, "/readyz to fail naming the auth peer", func() bool {
			code, body := get(base + "/readyz")
			return code == http.StatusServiceUnavailable && strings.Contains(body, `"peer auth"`)
		})
		start(t, "auth", env, "serve", "--service", "auth", "--data", t.TempDir(), "--grpc", authGRPC, "--http", freeAddr(t))
		eventually(t, 30*time.Second, "/readyz to be ready once auth answers", func() bool { return status(base+"/readyz") == http.StatusOK })
	})
}

// get returns the status and body of GET u; 0 when nothing answers.
func get(u string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func status(u string) int {
	code, _ := get(u)
	return code
}

// tcpProxy forwards connections to a target; cut closes its listener and every
// connection (new ones are refused), restore listens again on the same address.
type tcpProxy struct {
	t      testing.TB
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.pipe(c) }()
		}
	}()
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *tcpProxy) pipe(c net.Conn) {
	if !p.track(c) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(up) {
		c.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

// cut refuses new connections and closes the open ones.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// restore accepts connections again on the same address.
func (p *tcpProxy) restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}
