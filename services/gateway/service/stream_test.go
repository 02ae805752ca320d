package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"github.com/simpleci/simpleci/services/gateway/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	userToken = "user-token-org1"
	knownRun  = "01runknown"
)

// fakeVerifier knows one user token, of org1.
type fakeVerifier struct{}

func (fakeVerifier) VerifyToken(_ context.Context, token string) (*authv1.Principal, error) {
	if token == userToken {
		return &authv1.Principal{UserId: "u1", OrgId: "org1", Login: "alice", Role: "viewer"}, nil
	}
	return nil, status.Error(codes.Unauthenticated, "unknown token")
}

// fakeRuns knows one run, of org1.
type fakeRuns struct {
	apiv1.UnimplementedRunServiceServer
}

func (fakeRuns) GetRun(ctx context.Context, req *apiv1.GetRunRequest) (*apiv1.Run, error) {
	org, err := auth.RequireOrg(ctx)
	if err != nil {
		return nil, err
	}
	if org != "org1" || req.GetRun() != knownRun {
		return nil, status.Errorf(codes.NotFound, "run %q not found", req.GetRun())
	}
	return &apiv1.Run{Id: knownRun}, nil
}

// fakeLogs tails any run the way the log service does for a run without output yet:
// it waits. Once release is closed it sends two chunks and ends the log.
type fakeLogs struct {
	apiv1.UnimplementedLogServiceServer
	release chan struct{}
}

func (f *fakeLogs) TailLogs(req *apiv1.TailLogsRequest, s grpc.ServerStreamingServer[apiv1.LogChunk]) error {
	if _, err := auth.RequireOrg(s.Context()); err != nil {
		return err
	}
	select {
	case <-s.Context().Done():
		return status.FromContextError(s.Context().Err()).Err()
	case <-f.release:
	}
	for seq := req.GetAfter() + 1; seq <= 2; seq++ {
		if err := s.Send(&apiv1.LogChunk{Sequence: seq, Text: "line\n"}); err != nil {
			return err
		}
	}
	return nil
}

// server serves the gateway's routes over real HTTP, so that a handler that does not
// answer shows as a timeout.
func (e *env) server() *httptest.Server {
	srv := httptest.NewServer(e.mux)
	e.t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: no answer within 3 s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestStreamRefusedAtOnce(t *testing.T) {
	e := newEnv(t)
	srv := e.server()
	tests := []struct {
		name, run, token string
		wantCode         int
		wantGRPC         codes.Code
	}{
		{"unknown run", "01runnope", userToken, 404, codes.NotFound},
		{"no token", knownRun, "", 401, codes.Unauthenticated},
		{"bad token", knownRun, "forged", 401, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, srv.URL+"/api/v1/runs/"+tt.run+"/logs:stream", tt.token)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantCode)
			}
			var ae apiError
			if err := json.NewDecoder(resp.Body).Decode(&ae); err != nil {
				t.Fatalf("body is not the API's error shape: %v", err)
			}
			if codes.Code(ae.Code) != tt.wantGRPC || ae.Message == "" {
				t.Fatalf("error %+v, want code %s and a message", ae, tt.wantGRPC)
			}
		})
	}
}

func TestStreamHeadersBeforeFirstChunk(t *testing.T) {
	e := newEnv(t)
	srv := e.server()
	// The log has no chunk yet: the headers must still arrive.
	resp := get(t, srv.URL+"/api/v1/runs/"+knownRun+"/logs:stream", userToken)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d content type %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	close(e.logs.release)
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, ev)
		}
	}
	if got := strings.Join(events, ","); got != "log,log,end" {
		t.Fatalf("events %s, want log,log,end", got)
	}
}

// A stream lasts longer than the server's read and write deadlines: the handler clears
// them, or the server would cancel the tail when they hit.
func TestStreamOutlivesServerDeadlines(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(e.mux)
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	resp := get(t, srv.URL+"/api/v1/runs/"+knownRun+"/logs:stream", userToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	time.Sleep(700 * time.Millisecond)
	close(e.logs.release)
	var events []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, ev)
		}
	}
	if got := strings.Join(events, ","); got != "log,log,end" {
		t.Fatalf("events %q after the deadlines passed, want log,log,end", got)
	}
}

// A token holds at most DefaultMaxStreamsPerToken streams at once: the next gets 429
// with a message that says why, and a stream that ends gives its slot back.
func TestStreamsPerTokenCapped(t *testing.T) {
	e := newEnv(t)
	srv := e.server()
	url := srv.URL + "/api/v1/runs/" + knownRun + "/logs:stream"
	open := func() (*http.Response, context.CancelFunc) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+userToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp, cancel
	}
	var cancels []context.CancelFunc
	for i := range service.DefaultMaxStreamsPerToken {
		resp, cancel := open()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: status %d, want 200", i+1, resp.StatusCode)
		}
		cancels = append(cancels, cancel)
	}
	resp, _ := open()
	var ae apiError
	if resp.StatusCode != http.StatusTooManyRequests || json.NewDecoder(resp.Body).Decode(&ae) != nil ||
		codes.Code(ae.Code) != codes.ResourceExhausted || !strings.Contains(ae.Message, "too many log streams: this token already has 8 open") {
		t.Fatalf("stream %d: status %d, error %+v; want 429 saying the token has 8 open", service.DefaultMaxStreamsPerToken+1, resp.StatusCode, ae)
	}
	cancels[0]() // the client goes away: its stream ends and frees the slot
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := open()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d 5 s after a stream ended: its slot was not given back", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
