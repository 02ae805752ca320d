package local_test

import (
	"errors"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
)

const sha1 = "0123456789abcdef0123456789abcdef01234567"

var secret = []byte("project-secret")

// newForge returns a forge; unless opts name repository roots, the tests' temporary
// directories are its root.
func newForge(t testing.TB, opts local.Options) *local.Forge {
	t.Helper()
	if opts.LocalRoots == nil {
		opts.LocalRoots = []string{os.TempDir()}
	}
	f, err := local.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func signed(body string, extra ...string) http.Header {
	h := http.Header{}
	h.Set(forge.SignatureHeader, forge.Sign(secret, []byte(body)))
	for i := 0; i+1 < len(extra); i += 2 {
		h.Set(extra[i], extra[i+1])
	}
	return h
}

func TestParseWebhookSignature(t *testing.T) {
	f := newForge(t, local.Options{})
	body := `{"ref":"refs/heads/main","after":"` + sha1 + `"}`
	good := forge.Sign(secret, []byte(body))
	tests := []struct {
		name   string
		header string
		secret []byte
		ok     bool
	}{
		{"good", good, secret, true},
		{"wrong secret", forge.Sign([]byte("nope"), []byte(body)), secret, false},
		{"missing", "", secret, false},
		{"malformed", "sha256=xyz", secret, false},
		{"wrong prefix", strings.Replace(good, "sha256=", "sha1=", 1), secret, false},
		{"project without secret", forge.Sign(nil, []byte(body)), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set(forge.SignatureHeader, tt.header)
			}
			_, err := f.ParseWebhook(h, []byte(body), tt.secret)
			if tt.ok && err != nil {
				t.Fatalf("want ok, got %v", err)
			}
			if !tt.ok && !errors.Is(err, forge.ErrBadSignature) {
				t.Fatalf("want ErrBadSignature, got %v", err)
			}
		})
	}

	// A body that fails the signature is refused as such before it is parsed:
	// garbage with a bad signature is ErrBadSignature, never ErrBadPayload.
	h := http.Header{}
	h.Set(forge.SignatureHeader, good)
	if _, err := f.ParseWebhook(h, []byte("not json"), secret); !errors.Is(err, forge.ErrBadSignature) {
		t.Fatalf("unsigned garbage: want ErrBadSignature, got %v", err)
	}
}

func TestParseWebhookPayload(t *testing.T) {
	f := newForge(t, local.Options{})
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name    string
		body    string
		headers []string
		want    forge.Trigger // checked when wantErr is nil
		wantErr error
	}{
		{
			name:    "branch push",
			body:    `{"ref":"refs/heads/main","after":"` + sha1 + `","sender":{"login":"alice"},"repository":{"full_name":"acme/app"}}`,
			headers: []string{local.HeaderGitHubDelivery, "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
			want: forge.Trigger{Event: "push", Ref: "refs/heads/main", Branch: "main", SHA: sha1, Actor: "alice",
				Repository: "acme/app", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Trust: forge.TrustSameRepository},
		},
		{
			name: "nested branch, pusher as actor, upper-case sha",
			body: `{"ref":"refs/heads/feature/x","after":"` + strings.ToUpper(sha1) + `","pusher":{"name":"bob"}}`,
			want: forge.Trigger{Event: "push", Ref: "refs/heads/feature/x", Branch: "feature/x", SHA: sha1, Actor: "bob", Trust: forge.TrustSameRepository},
		},
		{
			name: "tag push becomes tag event",
			body: `{"ref":"refs/tags/v1.2.0","after":"` + sha1 + `"}`,
			want: forge.Trigger{Event: "tag", Ref: "refs/tags/v1.2.0", Tag: "v1.2.0", SHA: sha1, Trust: forge.TrustSameRepository},
		},
		{
			name:    "simpleci headers win",
			body:    `{"ref":"refs/heads/main","after":"` + sha1 + `"}`,
			headers: []string{local.HeaderEvent, "manual", local.HeaderGitHubEvent, "push", local.HeaderDelivery, "d1", local.HeaderGitHubDelivery, "d2"},
			want:    forge.Trigger{Event: "manual", Ref: "refs/heads/main", Branch: "main", SHA: sha1, DeliveryID: "d1", Trust: forge.TrustSameRepository},
		},
		{
			name:    "body event overrides header",
			body:    `{"event":"pull_request","ref":"refs/pull/7/head","after":"` + sha1 + `"}`,
			headers: []string{local.HeaderGitHubEvent, "push"},
			want:    forge.Trigger{Event: "pull_request", Ref: "refs/pull/7/head", SHA: sha1},
		},
		{name: "ping ignored", body: `{"zen":"hi"}`, headers: []string{local.HeaderGitHubEvent, "ping"}, wantErr: forge.ErrIgnoredEvent},
		{name: "branch deleted", body: `{"ref":"refs/heads/old","after":"` + strings.Repeat("0", 40) + `","deleted":true}`, wantErr: forge.ErrIgnoredEvent},
		{name: "unknown event", body: `{"ref":"refs/heads/main","after":"` + sha1 + `"}`, headers: []string{local.HeaderGitHubEvent, "issues"}, wantErr: forge.ErrBadPayload},
		{name: "tag event on a branch", body: `{"event":"tag","ref":"refs/heads/main","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "not json", body: `ref=refs/heads/main`, wantErr: forge.ErrBadPayload},
		{name: "empty body", body: ``, wantErr: forge.ErrBadPayload},
		{name: "json null", body: `null`, wantErr: forge.ErrBadPayload},
		{name: "json array", body: `[1,2]`, wantErr: forge.ErrBadPayload},
		{name: "trailing data", body: `{"ref":"refs/heads/main","after":"` + sha1 + `"} {}`, wantErr: forge.ErrBadPayload},
		{name: "ref wrong type", body: `{"ref":7,"after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "sender wrong type", body: `{"ref":"refs/heads/main","after":"` + sha1 + `","sender":"alice"}`, wantErr: forge.ErrBadPayload},
		{name: "missing ref", body: `{"after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "missing sha", body: `{"ref":"refs/heads/main"}`, wantErr: forge.ErrBadPayload},
		{name: "short sha", body: `{"ref":"refs/heads/main","after":"0123abc"}`, wantErr: forge.ErrBadPayload},
		{name: "non-hex sha", body: `{"ref":"refs/heads/main","after":"` + strings.Repeat("z", 40) + `"}`, wantErr: forge.ErrBadPayload},
		{name: "option as sha", body: `{"ref":"refs/heads/main","after":"--upload-pack=touch${IFS}/tmp/pwned"}`, wantErr: forge.ErrBadPayload},
		{name: "short ref", body: `{"ref":"main","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "ref traversal", body: `{"ref":"refs/heads/../../config","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "ref newline", body: `{"ref":"refs/heads/a\nb","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "ref NUL", body: `{"ref":"refs/heads/a\u0000b","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "ref option", body: `{"ref":"--exec=sh","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "ref reflog syntax", body: `{"ref":"refs/heads/main@{1}","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "huge ref", body: `{"ref":"refs/heads/` + long + `","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "huge actor", body: `{"ref":"refs/heads/main","after":"` + sha1 + `","sender":{"login":"` + long + `"}}`, wantErr: forge.ErrBadPayload},
		{name: "actor control char", body: `{"ref":"refs/heads/main","after":"` + sha1 + `","sender":{"login":"a\u001b[31m"}}`, wantErr: forge.ErrBadPayload},
		{name: "huge repository", body: `{"ref":"refs/heads/main","after":"` + sha1 + `","repository":{"full_name":"` + long + `"}}`, wantErr: forge.ErrBadPayload},
		{name: "huge event", body: `{"event":"` + long + `","ref":"refs/heads/main","after":"` + sha1 + `"}`, wantErr: forge.ErrBadPayload},
		{name: "hostile delivery id", body: `{"ref":"refs/heads/main","after":"` + sha1 + `"}`, headers: []string{local.HeaderGitHubDelivery, "a b\r\n"}, wantErr: forge.ErrBadPayload},
		{name: "huge delivery id", body: `{"ref":"refs/heads/main","after":"` + sha1 + `"}`, headers: []string{local.HeaderGitHubDelivery, long}, wantErr: forge.ErrBadPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.ParseWebhook(signed(tt.body, tt.headers...), []byte(tt.body), secret)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("want %v, got %v (trigger %+v)", tt.wantErr, err, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Payload == nil {
				t.Fatal("Payload is nil")
			}
			got.Payload = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseWebhookKeepsPayload(t *testing.T) {
	f := newForge(t, local.Options{})
	body := `{"ref":"refs/heads/main","after":"` + sha1 + `","id":12345678901234567890,"head_commit":{"message":"fix"}}`
	got, err := f.ParseWebhook(signed(body), []byte(body), secret)
	if err != nil {
		t.Fatal(err)
	}
	if id := got.Payload["id"]; id == nil || id.(interface{ String() string }).String() != "12345678901234567890" {
		t.Fatalf("large number not kept exactly: %v", id)
	}
	if msg := got.Payload["head_commit"].(map[string]any)["message"]; msg != "fix" {
		t.Fatalf("nested field: %v", msg)
	}
}

func TestParseWebhookTooLarge(t *testing.T) {
	f := newForge(t, local.Options{})
	body := `{"ref":"refs/heads/main","after":"` + sha1 + `","pad":"` + strings.Repeat("x", local.MaxBodySize) + `"}`
	if _, err := f.ParseWebhook(signed(body), []byte(body), secret); !errors.Is(err, forge.ErrBadPayload) {
		t.Fatalf("want ErrBadPayload, got %v", err)
	}
}

func FuzzParseWebhook(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main","after":"`+sha1+`","sender":{"login":"alice"}}`), "push", true)
	f.Add([]byte(`{"ref":"refs/tags/v1","after":"`+sha1+`"}`), "", true)
	f.Add([]byte(`{"event":"pull_request","ref":"refs/pull/1/head","after":"`+sha1+`"}`), "", true)
	f.Add([]byte(`{"ref":"refs/heads/../x","after":"`+sha1+`"}`), "ping", true)
	f.Add([]byte(`[`), "push", false)
	f.Add([]byte(`{"ref":{"a":[1,2,{"b":null}]},"after":1e999}`), "manual", true)
	fg := newForge(f, local.Options{})
	f.Fuzz(func(t *testing.T, body []byte, event string, sign bool) {
		h := http.Header{}
		h.Set(local.HeaderEvent, event)
		if sign {
			h.Set(forge.SignatureHeader, forge.Sign(secret, body))
		}
		tr, err := fg.ParseWebhook(h, body, secret)
		if !sign {
			if !errors.Is(err, forge.ErrBadSignature) {
				t.Fatalf("unsigned body accepted or misreported: %v", err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, forge.ErrBadPayload) && !errors.Is(err, forge.ErrIgnoredEvent) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if forge.ValidateSHA(tr.SHA) != nil || forge.ValidateRef(tr.Ref) != nil || !strings.HasPrefix(tr.Ref, "refs/") {
			t.Fatalf("accepted an invalid trigger: %+v", tr)
		}
		switch tr.Event {
		case forge.EventPush, forge.EventPullRequest, forge.EventTag, forge.EventManual:
		default:
			t.Fatalf("accepted event %q", tr.Event)
		}
		if tr.Event == forge.EventTag && tr.Tag == "" {
			t.Fatalf("tag event without tag: %+v", tr)
		}
	})
}

// The trust of a delivery comes from the provider's own fields only: a push, a tag
// or a manual event is of the repository; a pull request is of the same repository
// only when head and base name the same repository, and anything the payload leaves
// out (or a user's "fork"/"trust" field) never makes it trusted.
func TestParseWebhookTrust(t *testing.T) {
	f := newForge(t, local.Options{})
	pr := func(head, base string) string {
		return `{"ref":"refs/heads/feature","after":"` + sha1 + `","event":"pull_request","pull_request":{"head":{"repo":` + head + `},"base":{"repo":` + base + `}}}`
	}
	tests := []struct {
		name string
		body string
		want forge.Trust
	}{
		{"push", `{"ref":"refs/heads/main","after":"` + sha1 + `"}`, forge.TrustSameRepository},
		{"tag", `{"ref":"refs/tags/v1","after":"` + sha1 + `"}`, forge.TrustSameRepository},
		{"manual", `{"ref":"refs/heads/main","after":"` + sha1 + `","event":"manual"}`, forge.TrustSameRepository},
		{"pull request within the repository", pr(`{"full_name":"acme/app"}`, `{"full_name":"acme/app"}`), forge.TrustSameRepository},
		{"names differ only in case", pr(`{"full_name":"Acme/App"}`, `{"full_name":"acme/app"}`), forge.TrustSameRepository},
		{"pull request from a fork", pr(`{"full_name":"mallory/app"}`, `{"full_name":"acme/app"}`), forge.TrustFork},
		{"head repository deleted", pr(`null`, `{"full_name":"acme/app"}`), forge.TrustUnknown},
		{"head without a name", pr(`{}`, `{"full_name":"acme/app"}`), forge.TrustUnknown},
		{"no pull_request object", `{"ref":"refs/heads/f","after":"` + sha1 + `","event":"pull_request"}`, forge.TrustUnknown},
		{"user fields do not count", `{"ref":"refs/heads/f","after":"` + sha1 + `","event":"pull_request","fork":false,"trust":"same_repository","repository":{"full_name":"acme/app"}}`, forge.TrustUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := f.ParseWebhook(signed(tt.body), []byte(tt.body), secret)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Trust != tt.want {
				t.Fatalf("trust %s, want %s", tr.Trust, tt.want)
			}
		})
	}
}
