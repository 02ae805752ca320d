package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestReadyz(t *testing.T) {
	tests := []struct {
		name     string
		checks   map[string]func(context.Context) error
		drain    bool
		wantCode int
		wantFail []string
	}{
		{"no checks", nil, false, http.StatusOK, nil},
		{"all pass", map[string]func(context.Context) error{"database": func(context.Context) error { return nil }}, false, http.StatusOK, nil},
		{"one fails, named", map[string]func(context.Context) error{
			"database": func(context.Context) error { return errors.New("connection refused") },
			"kafka":    func(context.Context) error { return nil }}, false, http.StatusServiceUnavailable, []string{"database"}},
		{"a hanging check fails at its deadline", map[string]func(context.Context) error{
			"peer auth": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}, false, http.StatusServiceUnavailable, []string{"peer auth"}},
		{"draining", nil, true, http.StatusServiceUnavailable, []string{"draining"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Checks{}
			for n, fn := range tt.checks {
				c.Add(n, fn)
			}
			if tt.drain {
				c.Drain()
			}
			rec := httptest.NewRecorder()
			start := time.Now()
			Mux(c).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if took := time.Since(start); took > CheckTimeout+time.Second {
				t.Fatalf("/readyz took %s, want at most the check deadline", took)
			}
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			var body struct {
				Failed map[string]string `json:"failed"`
			}
			json.Unmarshal(rec.Body.Bytes(), &body)
			if len(body.Failed) != len(tt.wantFail) {
				t.Fatalf("failed %v, want %v", body.Failed, tt.wantFail)
			}
			for _, n := range tt.wantFail {
				if body.Failed[n] == "" {
					t.Fatalf("failed %v, want %s named with a reason", body.Failed, n)
				}
			}
		})
	}
}

func TestHTTPServerDeadlines(t *testing.T) {
	hs := HTTPServer(http.NotFoundHandler())
	if hs.ReadHeaderTimeout != ReadHeaderTimeout || hs.ReadTimeout != ReadTimeout || hs.IdleTimeout != IdleTimeout {
		t.Fatalf("deadlines %v/%v/%v, want %v/%v/%v", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.IdleTimeout, ReadHeaderTimeout, ReadTimeout, IdleTimeout)
	}
	if ReadHeaderTimeout <= 0 || ReadTimeout <= 0 || IdleTimeout <= 0 {
		t.Fatal("every deadline must be set")
	}
}

// A client that sends its headers and then trickles its body is cut off at the read
// deadline: the handler's read fails and the connection is closed.
func TestHTTPServerCutsSlowBody(t *testing.T) {
	readErr := make(chan error, 1)
	hs := HTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		readErr <- err
	}))
	hs.ReadTimeout = 300 * time.Millisecond // the real one is 30 s
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nab")
	start := time.Now()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the body read succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler still reads a trickled body after 5 s")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, c) // returns when the server closes the connection
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("connection closed after %v", d)
	}
}
