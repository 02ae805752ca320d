package service_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// call sends a request with the user's token and body ("" for none).
func (e *env) call(method, path, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	var r io.Reader = http.NoBody
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(e.ctx, method, path, r)
	req.Header.Set("Authorization", "Bearer "+userToken)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

// TestRequestsValidatedAgainstTheDocument: the gateway refuses, with 400 naming the field
// and why, what the served document does not allow, before any service sees it; what it
// allows goes through (the fake deployment has no project API: 501 shows it got through).
func TestRequestsValidatedAgainstTheDocument(t *testing.T) {
	e := newEnv(t)
	refused := []struct{ name, method, path, body, want string }{
		{"empty project", "POST", "/api/v1/projects", `{}`, "body field name: required"},
		{"project without a repository", "POST", "/api/v1/projects", `{"name":"app","provider":"local"}`, "body field repository: required"},
		{"bad project name", "POST", "/api/v1/projects", `{"name":"App!","provider":"local","repository":"/r"}`, "body field name: string doesn't match"},
		{"unknown provider", "POST", "/api/v1/projects", `{"name":"app","provider":"svn","repository":"/r"}`, "body field provider: value is not one of the allowed values"},
		{"unknown event", "POST", "/api/v1/projects", `{"name":"app","provider":"local","repository":"/r","events":["push","nap"]}`, "body field events.1: value is not one of"},
		{"unknown field", "POST", "/api/v1/projects", `{"name":"app","provider":"local","repository":"/r","colour":"red"}`, `body field colour: unknown field (known fields: events, name, network, provider, repository, tier)`},
		{"snake_case field", "POST", "/api/v1/tokens", `{"name":"ci","expires_in":"1h"}`, "body field expires_in: unknown field"},
		{"missing required body", "POST", "/api/v1/projects", ``, "request body: required"},
		{"not JSON", "POST", "/api/v1/projects", `{"name":`, "request body: not JSON"},
		{"not an object", "POST", "/api/v1/projects", `[1]`, "request body: value must be an object"},
		{"3-character secret", "PUT", "/api/v1/projects/app/secrets/TOKEN", `{"value":"q7z"}`, "body field value: minimum string length is 4"},
		{"lower-case secret name", "PUT", "/api/v1/projects/app/secrets/token", `{"value":"long enough"}`, "path parameter name: string doesn't match"},
		{"bad run id", "POST", "/api/v1/runs/not-a-run:cancel", `{}`, "path parameter run: "},
		{"bad time", "GET", "/api/v1/projects/app/runs?since=2026-02-30T00:00:00Z", ``, "query parameter since: "},
		{"bad page size", "GET", "/api/v1/projects/app/runs?pageSize=ten", ``, "query parameter pageSize: cannot be parsed"},
		{"bad ref", "POST", "/api/v1/projects/app/runs", `{"ref":"main..x"}`, "body field ref: string doesn't match"},
		{"token lifetime out of range", "POST", "/api/v1/tokens", `{"name":"ci","expiresIn":"9000h"}`, "body field expiresIn: string doesn't match"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.at(t).call(tt.method, tt.path, tt.body)
			wantError(t, rec, http.StatusBadRequest, codes.InvalidArgument, tt.want)
			if strings.Contains(rec.Body.String(), "q7z") {
				t.Fatalf("the error quotes the refused value: %s", rec.Body)
			}
		})
	}
	passed := []struct{ name, method, path, body string }{
		{"a valid project", "POST", "/api/v1/projects", `{"name":"app","provider":"local","repository":"/r","events":["push"],"network":"off"}`},
		{"a body without required fields may be left out", "POST", "/api/v1/projects/app/runs", ``},
		{"any Content-Type is read as JSON", "PUT", "/api/v1/projects/app/secrets/TOKEN", `{"value":"long enough"}`},
	}
	for _, tt := range passed {
		t.Run(tt.name, func(t *testing.T) {
			if rec := e.at(t).call(tt.method, tt.path, tt.body); rec.Code == http.StatusBadRequest {
				t.Fatalf("refused: %s", rec.Body)
			}
		})
	}
}

// TestOpenAPIDocumentServed: /openapi.json is public OpenAPI 3.0 stating required
// fields, patterns, lengths, the deployment's providers and every operation's statuses.
func TestOpenAPIDocumentServed(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequestWithContext(e.ctx, http.MethodGet, "/openapi.json", nil)
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			OperationID string                     `json:"operationId"`
			Responses   map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required             []string                   `json:"required"`
				AdditionalProperties *bool                      `json:"additionalProperties"`
				Properties           map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/api/v1/webhooks/{provider}/{project}", "/api/v1/runs/{run}/logs:stream", "/api/v1/schema/pipeline.json", "/openapi.json"} {
		if doc.Paths[p] == nil {
			t.Errorf("the gateway's own route %s is not stated", p)
		}
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Fatalf("openapi %q, want 3.0.x", doc.OpenAPI)
	}
	cp := doc.Components.Schemas["v1CreateProjectRequest"]
	if strings.Join(cp.Required, ",") != "name,provider,repository" || cp.AdditionalProperties == nil || *cp.AdditionalProperties {
		t.Fatalf("CreateProjectRequest: required %v, additionalProperties %v", cp.Required, cp.AdditionalProperties)
	}
	if p := string(cp.Properties["provider"]); !strings.Contains(p, `"enum":["local"`) {
		t.Fatalf("provider should list the deployment's forges: %s", p)
	}
	if v := string(doc.Components.Schemas["ProjectServiceSetSecretBody"].Properties["value"]); !strings.Contains(v, `"minLength":4`) {
		t.Fatalf("a secret's value should state its minimum length: %s", v)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			codes := []string{"400", "401", "403", "405", "503"}
			if strings.HasPrefix(op.OperationID, "Gateway_") { // the gateway's own routes: their own statuses
				codes = []string{"200", "405"}
				if path == "/api/v1/webhooks/{provider}/{project}" {
					codes = []string{"202", "200", "400", "401", "404", "405", "409", "413", "422", "429", "503"}
				}
			}
			for _, code := range codes {
				if op.Responses[code] == nil {
					t.Errorf("%s %s does not state %s", method, path, code)
				}
			}
		}
	}
	create := doc.Paths["/api/v1/projects"]["post"].Responses
	for _, code := range []string{"200", "409", "413"} {
		if create[code] == nil {
			t.Errorf("POST /api/v1/projects does not state %s", code)
		}
	}
}
