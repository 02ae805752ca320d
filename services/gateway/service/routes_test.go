package service

import (
	"slices"
	"testing"
)

func TestRoutesAllowed(t *testing.T) {
	rt := apiRoutes().add("POST", "/api/v1/webhooks/{provider}/{project}")
	tests := []struct {
		path string
		want []string
	}{
		{"/api/v1/projects", []string{"GET", "POST"}},
		{"/api/v1/projects/", []string{"GET", "POST"}},
		{"/api/v1/projects/p1/secrets/X", []string{"DELETE", "PUT"}},
		{"/api/v1/runs/r1:cancel", []string{"POST"}}, // no run id holds a ":"
		{"/api/v1/runs/:cancel", nil},
		{"/api/v1/runs/r1/logs", []string{"GET"}},
		{"/api/v1/webhooks/local/p", []string{"POST"}},
		{"/api/v1/webhooks/local", nil},
		{"/api/v2/projects", nil},
		{"/healthz", nil},
	}
	for _, tt := range tests {
		if got := rt.allowed(tt.path); !slices.Equal(got, tt.want) {
			t.Errorf("allowed(%s) = %v, want %v", tt.path, got, tt.want)
		}
	}
}
