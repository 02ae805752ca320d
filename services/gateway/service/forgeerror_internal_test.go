package service

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestForgeFailureIs502: an error the project service marks FORGE_FAILED (GitHub
// refused the webhook) is 502 with its message; a plain Unavailable stays 503.
func TestForgeFailureIs502(t *testing.T) {
	mux := runtime.NewServeMux()
	answer := func(err error) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/projects", nil)
		apiErrorHandler(context.Background(), mux, &runtime.JSONPb{}, rec, req, err)
		return rec
	}
	st, err := status.New(codes.Unavailable, "project not created: registering its webhook: github failed").
		WithDetails(&errdetails.ErrorInfo{Reason: "FORGE_FAILED", Domain: "simpleci"})
	if err != nil {
		t.Fatal(err)
	}
	if rec := answer(st.Err()); rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "registering its webhook") {
		t.Errorf("forge failure: %d %s, want 502 with the message", rec.Code, rec.Body)
	}
	if rec := answer(status.Error(codes.Unavailable, "down")); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("plain Unavailable: %d, want 503", rec.Code)
	}
}
