package service

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIntakeGate(t *testing.T) {
	draining := make(chan struct{})
	h := intakeGate(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }), draining)
	tests := []struct {
		method, path string
		refused      bool
	}{
		{"POST", "/api/v1/webhooks/local/demo", false}, // recorded durably, forwarded later
		{"POST", "/api/v1/projects/demo/runs", true},
		{"GET", "/api/v1/projects/demo/runs", false},
		{"POST", "/api/v1/runs/r1:cancel", false},
		{"POST", "/api/v1/projects", false},
		{"PUT", "/api/v1/projects/demo/secrets/X", false},
	}
	for _, open := range []bool{true, false} {
		if !open {
			close(draining)
		}
		for _, tt := range tests {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			want := http.StatusTeapot
			if !open && tt.refused {
				want = http.StatusServiceUnavailable
			}
			if rec.Code != want {
				t.Errorf("%s %s (draining %v): %d, want %d", tt.method, tt.path, !open, rec.Code, want)
			}
		}
	}
}
