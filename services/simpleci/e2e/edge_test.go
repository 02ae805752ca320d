package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// endless is a request body of size bytes, a JSON string that never ends
// ({"name":"xxx...), that counts what was sent of it.
type endless struct{ size, sent int64 }

func (b *endless) Read(p []byte) (int, error) {
	if b.sent >= b.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.size-b.sent)
	for i := range n {
		p[i] = 'x'
		if b.sent == 0 && i < 9 {
			p[i] = `{"name":"`[i]
		}
	}
	b.sent += n
	return int(n), nil
}

// TestDevHostileEdge sends hostile requests to `simpleci dev` from outside and checks
// that each is answered at once, with its status and message in the API's error shape.
func TestDevHostileEdge(t *testing.T) {
	hostileEdge(t, startDev(t), "demo", "main")
}

// edgeAnswer is what the gateway answered a hostile request.
type edgeAnswer struct {
	code  int
	allow string
	body  struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
}

// send sends method path with token (may be empty) and body (nil: none; declared its
// Content-Length, -1 for chunked) and returns the answer, which must come within 10 s and,
// unless it is an event stream, be the API's JSON error or result shape.
func (a *api) send(t *testing.T, method, path, token string, body io.Reader, declared int64) edgeAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, a.base+path, body)
	req.ContentLength = declared
	if body == nil {
		req.ContentLength = 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: no answer within 10 s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var ans edgeAnswer
	ans.code, ans.allow = resp.StatusCode, resp.Header.Get("Allow")
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &ans.body); err != nil {
			t.Fatalf("%s %s: %d %.200q is not the API's JSON error shape", method, path, resp.StatusCode, b)
		}
	}
	return ans
}

// wantAnswer fails the test unless got has status code and a message containing msg.
func wantAnswer(t *testing.T, got edgeAnswer, code int, msg string) {
	t.Helper()
	if got.code != code || !strings.Contains(got.body.Message, msg) {
		t.Fatalf("answer %d %q, want %d with %q", got.code, got.body.Message, code, msg)
	}
}

// hostileEdge sends hostile requests to the gateway behind a; project is a project whose
// pipeline at ref finishes by itself.
func hostileEdge(t *testing.T, a *api, project, ref string) {
	send, want := a.send, wantAnswer
	t.Run("log stream of an unknown run is 404 at once", func(t *testing.T) {
		want(t, send(t, "GET", "/api/v1/runs/01unknownrun/logs:stream", a.token, nil, 0), 404, "not found")
	})
	t.Run("log stream of a known run answers before its output", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		var r run
		a.json("POST", "/api/v1/projects/"+project+"/runs", map[string]string{"ref": ref}, http.StatusOK, &r)
		if got := send(t, "GET", "/api/v1/runs/"+r.ID+"/logs:stream", a.token, nil, 0); got.code != 200 {
			t.Fatalf("stream: %d %q", got.code, got.body.Message)
		}
		a.waitRun(r.ID, 60*time.Second)
	})
	t.Run("30 MiB without a token is 401", func(t *testing.T) {
		want(t, send(t, "POST", "/api/v1/projects", "", &endless{size: 30 << 20}, -1), 401, "bearer token")
	})
	t.Run("30 MiB with a token is 413", func(t *testing.T) {
		want(t, send(t, "POST", "/api/v1/projects", a.token, &endless{size: 30 << 20}, -1), 413, "larger than 1048576 bytes")
		want(t, send(t, "POST", "/api/v1/projects", a.token, &endless{size: 30 << 20}, 30<<20), 413, "larger than 1048576 bytes")
	})
	t.Run("webhook body for an unknown project is 404", func(t *testing.T) {
		want(t, send(t, "POST", "/api/v1/webhooks/local/no-such-project", "", &endless{size: 20 << 20}, -1), 404, "no-such-project")
	})
	t.Run("webhook body declared over 25 MiB is 413", func(t *testing.T) {
		want(t, send(t, "POST", "/api/v1/webhooks/local/"+project, "", &endless{size: 26 << 20}, 26<<20), 413, "larger than")
	})
	t.Run("a method the path lacks is 405 with Allow", func(t *testing.T) {
		for _, tt := range []struct{ method, path, allow string }{
			{"DELETE", "/api/v1/projects", "GET, POST"},
			{"GET", "/api/v1/webhooks/local/" + project, "POST"},
			{"PUT", "/api/v1/runs/01x/logs:stream", "GET"},
		} {
			got := send(t, tt.method, tt.path, "", nil, 0)
			want(t, got, 405, "not a method")
			if got.allow != tt.allow {
				t.Fatalf("%s %s: Allow %q, want %q", tt.method, tt.path, got.allow, tt.allow)
			}
		}
	})
	t.Run("headers sent a byte at a time are cut off", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(a.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n") // and never the end of the headers
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		io.Copy(io.Discard, c) // until the server closes the connection
		if d := time.Since(start); d > 15*time.Second {
			t.Fatalf("the server held an unfinished request for %v", d)
		}
	})
}
