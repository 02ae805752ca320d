package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
)

// Headers a local webhook delivery may carry besides forge.SignatureHeader.
// The X-SimpleCI-* forms win over the X-GitHub-* forms.
const (
	HeaderEvent          = "X-SimpleCI-Event"
	HeaderGitHubEvent    = "X-GitHub-Event"
	HeaderDelivery       = "X-SimpleCI-Delivery"
	HeaderGitHubDelivery = "X-GitHub-Delivery"
)

// MaxBodySize is the largest body ParseWebhook accepts (GitHub's own cap).
const MaxBodySize = 25 << 20

// Bounds on the free-text fields of a delivery.
const (
	maxActorLength      = 255
	maxRepositoryLength = 1024
)

// payload is the part of the body ParseWebhook understands. Unknown fields are
// kept in Trigger.Payload and otherwise ignored.
type payload struct {
	Ref     string `json:"ref"`
	After   string `json:"after"`
	Event   string `json:"event"`
	Deleted bool   `json:"deleted"`
	Sender  struct {
		Login string `json:"login"`
	} `json:"sender"`
	Pusher struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Repository struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	PullRequest *struct {
		Head side `json:"head"`
		Base side `json:"base"`
	} `json:"pull_request"`
}

// side is one end of a GitHub-like pull request: the repository its commits are in.
type side struct {
	Ref  string `json:"ref"`
	Repo *struct {
		FullName string `json:"full_name"`
	} `json:"repo"`
}

// trust decides whose code a delivery builds. Push, tag and manual events are of
// the repository itself. A pull request is of the same repository only when the
// payload names both ends and they are the same repository; different names
// (the head is another repository) make it a fork; anything missing (a deleted
// head repository, a payload without "pull_request") leaves it unknown.
func (p *payload) trust(event string) forge.Trust {
	if event != forge.EventPullRequest {
		return forge.TrustSameRepository
	}
	if p.PullRequest == nil || p.PullRequest.Head.Repo == nil || p.PullRequest.Base.Repo == nil {
		return forge.TrustUnknown
	}
	head, base := p.PullRequest.Head.Repo, p.PullRequest.Base.Repo
	switch {
	case head.FullName == "" || base.FullName == "":
		return forge.TrustUnknown
	case !strings.EqualFold(head.FullName, base.FullName): // GitHub names are case-insensitive
		return forge.TrustFork
	}
	return forge.TrustSameRepository
}

// ParseWebhook verifies and parses a delivery. The body is GitHub-push-like:
//
//	{"ref": "refs/heads/main", "after": "<40-hex sha>", "sender": {"login": "alice"}}
//
// with optional "event" (overrides the event header), "repository":
// {"full_name": ...}, "pusher": {"name": ...} (actor when sender is absent) and
// "deleted". Headers: forge.SignatureHeader ("sha256=" + hex HMAC-SHA256 of the
// body with secret, see forge.Sign) is required and checked before the body is
// parsed; the event comes from the body's "event", else X-SimpleCI-Event, else
// X-GitHub-Event, else "push"; the delivery id from X-SimpleCI-Delivery or
// X-GitHub-Delivery.
//
// A pull_request event carries GitHub's "pull_request": {"head": {"repo":
// {"full_name": ...}}, "base": {"repo": {"full_name": ...}}}; Trigger.Trust is
// decided from it (see payload.trust), every other event is of the repository.
//
// A push of a refs/tags/ ref becomes a tag event. A "ping" event or a branch
// deletion (all-zero "after", or "deleted": true) returns forge.ErrIgnoredEvent.
func (f *Forge) ParseWebhook(header http.Header, body []byte, secret []byte) (forge.Trigger, error) {
	if err := forge.VerifySignature(header.Get(forge.SignatureHeader), body, secret); err != nil {
		return forge.Trigger{}, err
	}
	return parsePayload(header, body)
}

func parsePayload(header http.Header, body []byte) (forge.Trigger, error) {
	bad := func(format string, args ...any) (forge.Trigger, error) {
		return forge.Trigger{}, fmt.Errorf("%w: %s", forge.ErrBadPayload, fmt.Sprintf(format, args...))
	}
	if len(body) > MaxBodySize {
		return bad("body is %d bytes, more than %d", len(body), MaxBodySize)
	}

	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return bad("body is not a JSON object: %v", err)
	}
	if raw == nil {
		return bad("body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("body has data after the JSON object")
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return bad("%v", err)
	}

	event := firstNonEmpty(p.Event, header.Get(HeaderEvent), header.Get(HeaderGitHubEvent), forge.EventPush)
	switch event {
	case forge.EventPush, forge.EventPullRequest, forge.EventTag, forge.EventManual:
	case "ping":
		return forge.Trigger{}, fmt.Errorf("%w: ping", forge.ErrIgnoredEvent)
	default:
		if len(event) > 64 {
			event = event[:64] + "..."
		}
		return bad("event %q is not one of push, pull_request, tag, manual", event)
	}

	if p.Ref == "" {
		return bad(`"ref" is missing`)
	}
	if !strings.HasPrefix(p.Ref, "refs/") {
		return bad(`"ref" must be a full ref such as refs/heads/main`)
	}
	if err := forge.ValidateRef(p.Ref); err != nil {
		return bad("%v", err)
	}
	sha := strings.ToLower(p.After)
	if sha == "" {
		return bad(`"after" (the commit id) is missing`)
	}
	if err := forge.ValidateSHA(sha); err != nil {
		return bad(`"after": %v`, err)
	}
	if p.Deleted || sha == strings.Repeat("0", 40) {
		return forge.Trigger{}, fmt.Errorf("%w: %s was deleted", forge.ErrIgnoredEvent, p.Ref)
	}

	t := forge.Trigger{Event: event, Ref: p.Ref, SHA: sha, Payload: raw, Trust: p.trust(event)}
	if tag, ok := strings.CutPrefix(p.Ref, "refs/tags/"); ok {
		t.Tag = tag
		if t.Event == forge.EventPush {
			t.Event = forge.EventTag
		}
	} else if branch, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok {
		t.Branch = branch
	}
	if t.Event == forge.EventTag && t.Tag == "" {
		return bad("a tag event needs a refs/tags/ ref, got %q", p.Ref)
	}

	if t.Event == forge.EventPullRequest && p.PullRequest != nil && forge.CheckText(p.PullRequest.Base.Ref, 255) == nil {
		t.BaseBranch = strings.TrimPrefix(p.PullRequest.Base.Ref, "refs/heads/")
	}
	t.Actor = firstNonEmpty(p.Sender.Login, p.Pusher.Name)
	if err := forge.CheckText(t.Actor, maxActorLength); err != nil {
		return bad("actor: %v", err)
	}
	t.Repository = p.Repository.FullName
	if err := forge.CheckText(t.Repository, maxRepositoryLength); err != nil {
		return bad("repository: %v", err)
	}
	t.DeliveryID = firstNonEmpty(header.Get(HeaderDelivery), header.Get(HeaderGitHubDelivery))
	if !forge.ValidDeliveryID(t.DeliveryID) {
		return bad("delivery id must be at most %d letters, digits and . _ : -", forge.MaxDeliveryIDLength)
	}
	return t, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
