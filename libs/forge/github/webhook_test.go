package github

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
)

var secret = []byte("project-secret")

// payloads is the directory of GitHub's deliveries (testdata/payloads/README.md):
// PLATFORM/EVENT/FILE, the event being the X-GitHub-Event the file is sent with.
const payloads = "testdata/payloads"

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(payloads, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signed(event string, body []byte) http.Header {
	h := http.Header{}
	h.Set(HeaderEvent, event)
	h.Set(HeaderDelivery, "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	h.Set(forge.SignatureHeader, forge.Sign(secret, body))
	return h
}

func newForge(t *testing.T) *Forge {
	t.Helper()
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// expectation is what ParseWebhook makes of one delivery (testdata/payloads/expected.json):
// a trigger, or Ignored (a substring of the ErrIgnoredEvent, answered 200).
type expectation struct {
	Event      string `json:"event,omitempty"`
	Ref        string `json:"ref,omitempty"`
	Branch     string `json:"branch,omitempty"`
	Tag        string `json:"tag,omitempty"`
	SHA        string `json:"sha,omitempty"`
	Trust      string `json:"trust,omitempty"`
	Actor      string `json:"actor,omitempty"`
	Repository string `json:"repository,omitempty"`
	Ignored    string `json:"ignored,omitempty"`
}

var trustNames = map[forge.Trust]string{forge.TrustUnknown: "unknown", forge.TrustSameRepository: "same_repository", forge.TrustFork: "fork"}

// payloadFiles lists the deliveries under testdata/payloads (PLATFORM/EVENT/FILE).
func payloadFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(payloads, "*", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no payloads: %v", err)
	}
	for i, f := range files {
		files[i] = filepath.ToSlash(strings.TrimPrefix(f, payloads+string(filepath.Separator)))
	}
	return files
}

// TestParseWebhookFixtures parses every delivery in testdata/payloads (GitHub's
// published examples and the variants derived from them) and checks the trigger
// exactly, or that it is ignored for the expected reason. A file without an
// expectation, or an expectation without a file, fails.
func TestParseWebhookFixtures(t *testing.T) {
	f := newForge(t)
	var want map[string]expectation
	if err := json.Unmarshal(fixture(t, "expected.json"), &want); err != nil {
		t.Fatal(err)
	}
	files := payloadFiles(t)
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("%s has no expectation in %s/expected.json", name, payloads)
			}
			event := strings.Split(name, "/")[1]
			body := fixture(t, name)
			tr, err := f.ParseWebhook(signed(event, body), body, secret)
			if w.Ignored != "" {
				if !errors.Is(err, forge.ErrIgnoredEvent) || !strings.Contains(err.Error(), w.Ignored) {
					t.Fatalf("err = %v, want ErrIgnoredEvent saying %q", err, w.Ignored)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			got := expectation{Event: tr.Event, Ref: tr.Ref, Branch: tr.Branch, Tag: tr.Tag, SHA: tr.SHA,
				Trust: trustNames[tr.Trust], Actor: tr.Actor, Repository: tr.Repository}
			if got != w {
				t.Errorf("trigger\n got %+v\nwant %+v", got, w)
			}
			if tr.DeliveryID != "72d3162e-cc78-11e3-81ab-4c9367dc0958" || tr.Payload["repository"] == nil {
				t.Errorf("delivery %q, payload kept: %v", tr.DeliveryID, tr.Payload["repository"] != nil)
			}
		})
	}
	for name := range want {
		if !slices.Contains(files, name) {
			t.Errorf("expected.json names %s, which is not in %s", name, payloads)
		}
	}
}

// TestPayloadsAsPublished checks that the files taken from octokit/webhooks are
// unmodified: each one's SHA-256 is the one listed in the README, and every file
// not derived is listed there.
func TestPayloadsAsPublished(t *testing.T) {
	readme := string(fixture(t, "README.md"))
	for _, name := range payloadFiles(t) {
		if strings.HasPrefix(name, "derived/") {
			if !strings.Contains(readme, "`"+name+"`") {
				t.Errorf("%s is not described in the README", name)
			}
			continue
		}
		sum := sha256.Sum256(fixture(t, name))
		if line := "| `" + name + "` | `" + hex.EncodeToString(sum[:]) + "` |"; !strings.Contains(readme, line) {
			t.Errorf("%s: the README has no row %q: the file changed or is not listed", name, line)
		}
	}
}

func TestParseWebhookSignatureBeforeParsing(t *testing.T) {
	f := newForge(t)
	body := fixture(t, "api.github.com/push/with-new-branch.payload.json")
	for name, h := range map[string]http.Header{
		"missing": {HeaderEvent: {"push"}},
		"wrong":   {HeaderEvent: {"push"}, forge.SignatureHeader: {forge.Sign([]byte("other"), body)}},
		"sha1":    {HeaderEvent: {"push"}, forge.SignatureHeader: {"sha1=0123"}},
	} {
		if _, err := f.ParseWebhook(h, body, secret); !errors.Is(err, forge.ErrBadSignature) {
			t.Errorf("%s signature: err = %v, want ErrBadSignature", name, err)
		}
	}
	// Garbage with a wrong signature is a signature problem, never a parse error.
	if _, err := f.ParseWebhook(http.Header{forge.SignatureHeader: {forge.Sign([]byte("x"), []byte("{"))}}, []byte("{"), secret); !errors.Is(err, forge.ErrBadSignature) {
		t.Errorf("err = %v", err)
	}
	if _, err := f.ParseWebhook(signed("push", body), body, nil); !errors.Is(err, forge.ErrBadSignature) {
		t.Errorf("no project secret: err = %v", err)
	}
}

func TestParseWebhookBadPayloads(t *testing.T) {
	f := newForge(t)
	push := string(fixture(t, "api.github.com/push/with-new-branch.payload.json"))
	tag := string(fixture(t, "ghes-35/push/payload.json"))
	cases := map[string]struct {
		event, body string
	}{
		"not json":          {"push", "{"},
		"trailing data":     {"push", push + "{}"},
		"bad sha":           {"push", strings.Replace(push, "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "zz", 1)},
		"bad repository":    {"push", strings.Replace(push, `"full_name": "Codertocat/Hello-World"`, `"full_name": "../etc"`, 1)},
		"tag, bad commit":   {"push", strings.Replace(tag, `"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"`, `"id": "zz"`, 1)},
		"no repository":     {"push", `{"ref":"refs/heads/x","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","head_commit":{}}`},
		"no event":          {"", push},
		"pr without action": {"pull_request", `{"number":1}`},
		"pr without body":   {"pull_request", `{"action":"opened","number":1,"repository":{"full_name":"a/b"}}`},
	}
	for name, c := range cases {
		h := signed(c.event, []byte(c.body))
		if c.event == "" {
			h.Del(HeaderEvent)
		}
		_, err := f.ParseWebhook(h, []byte(c.body), secret)
		if !errors.Is(err, forge.ErrBadPayload) {
			t.Errorf("%s: err = %v, want ErrBadPayload", name, err)
		}
	}
	// An event nobody starts runs on is answered, not refused.
	body := []byte(`{"action":"created"}`)
	if _, err := f.ParseWebhook(signed("issue_comment", body), body, secret); !errors.Is(err, forge.ErrIgnoredEvent) {
		t.Errorf("issue_comment: err = %v", err)
	}
	// A hook left at GitHub's default content type (form data) is told how to fix it.
	form := []byte("payload=" + push)
	h := signed("push", form)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := f.ParseWebhook(h, form, secret); !errors.Is(err, forge.ErrBadPayload) || !strings.Contains(err.Error(), "application/json") {
		t.Errorf("form body: err = %v", err)
	}
	// A hostile delivery id is refused.
	h = signed("push", []byte(push))
	h.Set(HeaderDelivery, "a b\n")
	if _, err := f.ParseWebhook(h, []byte(push), secret); !errors.Is(err, forge.ErrBadPayload) {
		t.Errorf("delivery id: err = %v", err)
	}
}

func TestMatchesRepository(t *testing.T) {
	f := newForge(t)
	if !f.MatchesRepository("codertocat/hello-world", "Codertocat/Hello-World") {
		t.Error("names differing in case should match")
	}
	if f.MatchesRepository("Codertocat/Hello-World", "Codertocat/Other") || f.MatchesRepository("a/b", "") {
		t.Error("another repository matched")
	}
}

func TestSplitRepository(t *testing.T) {
	for _, ok := range []string{"octo/hello", "a-b/c.d_e-f", "A1/x"} {
		if _, _, err := SplitRepository(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "octo", "octo/", "/x", "-o/x", "o/x/y", "o/..", "o/.", "o/x.git", "o--/x", "o/x?y", "https://github.com/o/x"} {
		if _, _, err := SplitRepository(bad); !errors.Is(err, forge.ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", bad, err)
		}
	}
}
