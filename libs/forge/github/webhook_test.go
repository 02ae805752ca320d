package github

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
)

var secret = []byte("project-secret")

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
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

func TestParseWebhookFixtures(t *testing.T) {
	f := newForge(t)
	const (
		pushSHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
		prSHA   = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	)
	type want struct {
		event, ref, branch, tag, sha, actor string
		trust                               forge.Trust
	}
	runs := map[string]want{
		"push-branch.json":                           {forge.EventPush, "refs/heads/master", "master", "", pushSHA, "Codertocat", forge.TrustSameRepository},
		"push-tag.json":                              {forge.EventTag, "refs/tags/simple-tag", "", "simple-tag", pushSHA, "Codertocat", forge.TrustSameRepository},
		"push-new-branch-no-new-commits.json":        {forge.EventPush, "refs/heads/new-branch", "new-branch", "", pushSHA, "Codertocat", forge.TrustSameRepository},
		"pull_request-opened.json":                   {forge.EventPullRequest, "refs/pull/2/head", "", "", prSHA, "Codertocat", forge.TrustSameRepository},
		"pull_request-synchronize.json":              {forge.EventPullRequest, "refs/pull/2/head", "", "", prSHA, "Codertocat", forge.TrustSameRepository},
		"pull_request-reopened.json":                 {forge.EventPullRequest, "refs/pull/2/head", "", "", prSHA, "Codertocat", forge.TrustSameRepository},
		"pull_request-opened-fork.json":              {forge.EventPullRequest, "refs/pull/2/head", "", "", prSHA, "Octocat-fork", forge.TrustFork},
		"pull_request-synchronize-fork.json":         {forge.EventPullRequest, "refs/pull/2/head", "", "", prSHA, "Octocat-fork", forge.TrustFork},
		"pull_request-reopened-fork.json":            {forge.EventPullRequest, "refs/pull/2/head", "", "", prSHA, "Octocat-fork", forge.TrustFork},
		"pull_request-opened-deleted-head-repo.json": {forge.EventPullRequest, "refs/pull/2/head", "", "", prSHA, "Octocat-fork", forge.TrustUnknown},
	}
	ignored := []string{"push-branch-deleted.json", "push-tag-deleted.json", "push-no-commits.json",
		"pull_request-closed.json", "pull_request-closed-fork.json", "pull_request-labeled.json", "pull_request-labeled-fork.json", "ping.json"}

	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	covered := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		covered++
		event, _, _ := strings.Cut(strings.TrimSuffix(name, ".json"), "-")
		t.Run(name, func(t *testing.T) {
			body := fixture(t, name)
			tr, err := f.ParseWebhook(signed(event, body), body, secret)
			if w, ok := runs[name]; ok {
				if err != nil {
					t.Fatalf("ParseWebhook: %v", err)
				}
				got := want{tr.Event, tr.Ref, tr.Branch, tr.Tag, tr.SHA, tr.Actor, tr.Trust}
				if got != w {
					t.Errorf("trigger = %+v, want %+v", got, w)
				}
				if tr.Repository != "Codertocat/Hello-World" || tr.DeliveryID != "72d3162e-cc78-11e3-81ab-4c9367dc0958" {
					t.Errorf("repository %q delivery %q", tr.Repository, tr.DeliveryID)
				}
				if tr.Payload["repository"] == nil {
					t.Error("payload not kept")
				}
				return
			}
			if !errors.Is(err, forge.ErrIgnoredEvent) {
				t.Fatalf("err = %v, want ErrIgnoredEvent", err)
			}
		})
	}
	if covered != len(runs)+len(ignored) {
		t.Errorf("%d fixtures, %d expectations: every fixture needs one", covered, len(runs)+len(ignored))
	}
}

func TestParseWebhookSignatureBeforeParsing(t *testing.T) {
	f := newForge(t)
	body := fixture(t, "push-branch.json")
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
	push := string(fixture(t, "push-branch.json"))
	cases := map[string]struct {
		event, body string
	}{
		"not json":          {"push", "{"},
		"trailing data":     {"push", push + "{}"},
		"bad sha":           {"push", strings.Replace(push, "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "zz", 1)},
		"bad repository":    {"push", strings.Replace(push, `"full_name": "Codertocat/Hello-World"`, `"full_name": "../etc"`, 1)},
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
