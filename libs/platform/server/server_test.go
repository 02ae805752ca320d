package server

import (
	"context"
	"encoding/json"
	"errors"
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
