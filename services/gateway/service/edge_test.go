package service_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/services/gateway/service"
	"google.golang.org/grpc/codes"
)

// hostileBody is a body of size bytes ("{"name":"xxx...") that counts what was read of it.
type hostileBody struct {
	size, read int64
}

func (b *hostileBody) Read(p []byte) (int, error) {
	if b.read >= b.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.size-b.read)
	for i := range n {
		p[i] = 'x'
		if b.read == 0 && i < 9 {
			p[i] = `{"name":"`[i]
		}
	}
	b.read += n
	return int(n), nil
}

// send serves one request; declared < 0 sends the body without a length (chunked).
func (e *env) send(method, path, token string, body *hostileBody, declared int64) *httptest.ResponseRecorder {
	e.t.Helper()
	var r io.Reader = http.NoBody
	if body != nil {
		r = body
	}
	req := httptest.NewRequestWithContext(e.ctx, method, path, r)
	req.ContentLength = declared
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code codes.Code, msg string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %.300s", rec.Code, status, rec.Body)
	}
	var ae apiError
	if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil {
		t.Fatalf("body %.300s is not the API's error shape: %v", rec.Body, err)
	}
	if codes.Code(ae.Code) != code || !strings.Contains(ae.Message, msg) {
		t.Fatalf("error %+v, want code %s and a message with %q", ae, code, msg)
	}
}

func TestAPIMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	tests := []struct{ method, path, allow string }{
		{http.MethodDelete, "/api/v1/projects", "GET, POST"},
		{http.MethodPut, "/api/v1/projects/app", "DELETE, GET, PATCH"},
		{http.MethodPost, "/api/v1/projects/app/secrets/X", "DELETE, PUT"},
		{http.MethodPut, "/api/v1/runs/r1", "GET"},
		{http.MethodDelete, "/api/v1/runs/r1:cancel", "POST"}, // no run id holds a ":"
		{http.MethodPost, "/api/v1/runs/r1/logs:stream", "GET"},
		{http.MethodGet, "/api/v1/webhooks/local/app", "POST"},
		{http.MethodDelete, "/api/v1/schema/pipeline.json", "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			e := e.at(t)
			for _, token := range []string{userToken, ""} { // 405 with or without a token
				body := &hostileBody{size: 2 << 20}
				rec := e.send(tt.method, tt.path, token, body, -1)
				wantError(t, rec, http.StatusMethodNotAllowed, codes.Unimplemented, tt.allow)
				if got := rec.Header().Get("Allow"); got != tt.allow {
					t.Fatalf("Allow %q, want %q", got, tt.allow)
				}
				if body.read != 0 {
					t.Fatalf("%d bytes of the body read", body.read)
				}
			}
		})
	}
	t.Run("unknown path is 404", func(t *testing.T) {
		e := e.at(t)
		wantError(t, e.send(http.MethodGet, "/api/v1/nothing", userToken, nil, 0), http.StatusNotFound, codes.NotFound, "")
	})
}

func TestAPIAuthenticatesBeforeReading(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/projects"},
		{http.MethodPut, "/api/v1/projects/app/secrets/TOKEN"},
		{http.MethodPost, "/api/v1/projects/app/runs"},
		{http.MethodGet, "/api/v1/projects"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			e := e.at(t)
			body := &hostileBody{size: 30 << 20}
			wantError(t, e.send(tt.method, tt.path, "", body, -1), http.StatusUnauthorized, codes.Unauthenticated, "bearer token")
			if body.read != 0 {
				t.Fatalf("%d bytes of the body read without a token", body.read)
			}
		})
	}
}

func TestAPIBodyBounded(t *testing.T) {
	e := newEnv(t)
	t.Run("declared too large", func(t *testing.T) {
		e := e.at(t)
		body := &hostileBody{size: 30 << 20}
		wantError(t, e.send(http.MethodPost, "/api/v1/projects", userToken, body, body.size), http.StatusRequestEntityTooLarge, codes.InvalidArgument, "larger than")
		if body.read != 0 {
			t.Fatalf("%d bytes read of a body declared too large", body.read)
		}
	})
	t.Run("undeclared too large", func(t *testing.T) {
		e := e.at(t)
		body := &hostileBody{size: 30 << 20}
		wantError(t, e.send(http.MethodPost, "/api/v1/projects", userToken, body, -1), http.StatusRequestEntityTooLarge, codes.InvalidArgument, "larger than")
		if body.read > service.MaxAPIBody+64<<10 {
			t.Fatalf("%d bytes read, want at most the limit", body.read)
		}
	})
	t.Run("under the limit reaches the service", func(t *testing.T) {
		e := e.at(t)
		req := httptest.NewRequestWithContext(e.ctx, http.MethodPost, "/api/v1/projects", strings.NewReader(`{"name":"app","provider":"local","repository":"/`+strings.Repeat("x", 1000)+`"}`))
		req.Header.Set("Authorization", "Bearer "+userToken)
		rec := httptest.NewRecorder()
		e.mux.ServeHTTP(rec, req)
		// The fake deployment has no project API: the request got through the edge.
		wantError(t, rec, http.StatusNotImplemented, codes.Unimplemented, "ProjectService")
	})
}

func TestWebhookNothingReadBeforeTheProject(t *testing.T) {
	e := newEnv(t)
	t.Run("unknown project", func(t *testing.T) {
		e := e.at(t)
		body := &hostileBody{size: 20 << 20}
		wantError(t, e.send(http.MethodPost, "/api/v1/webhooks/local/nope", "", body, -1), http.StatusNotFound, codes.NotFound, "nope")
		if body.read != 0 {
			t.Fatalf("%d bytes read for an unknown project", body.read)
		}
	})
	t.Run("declared too large", func(t *testing.T) {
		e := e.at(t)
		body := &hostileBody{size: service.MaxWebhookBody + 1}
		wantError(t, e.send(http.MethodPost, "/api/v1/webhooks/local/app", "", body, body.size), http.StatusRequestEntityTooLarge, codes.InvalidArgument, "larger than")
		if body.read != 0 {
			t.Fatalf("%d bytes read of a body declared too large", body.read)
		}
	})
	t.Run("undeclared too large", func(t *testing.T) {
		e := e.at(t)
		body := &hostileBody{size: 30 << 20}
		wantError(t, e.send(http.MethodPost, "/api/v1/webhooks/local/app", "", body, -1), http.StatusRequestEntityTooLarge, codes.InvalidArgument, "larger than")
		if body.read > service.MaxWebhookBody+64<<10 {
			t.Fatalf("%d bytes read, want at most the limit", body.read)
		}
	})
}
