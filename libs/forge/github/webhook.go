package github

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
)

// Headers of a GitHub delivery besides forge.SignatureHeader.
const (
	HeaderEvent    = "X-GitHub-Event"
	HeaderDelivery = "X-GitHub-Delivery"
)

// MaxBodySize is the largest body ParseWebhook accepts (GitHub's own cap).
const MaxBodySize = 25 << 20

// Bounds on the free-text fields of a delivery.
const (
	maxActorLength = 255
	maxEventLength = 64
)

// startingActions are the pull_request actions that start a run: new commits to
// build. The others (closed, labeled, assigned, edited, ...) are ignored.
var startingActions = map[string]bool{"opened": true, "synchronize": true, "reopened": true}

// repoRef is a repository as a payload names it.
type repoRef struct {
	FullName string `json:"full_name"`
}

// push is the part of a push delivery ParseWebhook reads.
type push struct {
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	HeadCommit *struct {
		ID string `json:"id"`
	} `json:"head_commit"`
	Repository *repoRef `json:"repository"`
	Sender     *struct {
		Login string `json:"login"`
	} `json:"sender"`
	Pusher *struct {
		Name string `json:"name"`
	} `json:"pusher"`
}

// pullRequest is the part of a pull_request delivery ParseWebhook reads.
type pullRequest struct {
	Action      string   `json:"action"`
	Number      int64    `json:"number"`
	Repository  *repoRef `json:"repository"`
	PullRequest *struct {
		Number int64 `json:"number"`
		Head   end   `json:"head"`
		Base   end   `json:"base"`
	} `json:"pull_request"`
	Sender *struct {
		Login string `json:"login"`
	} `json:"sender"`
}

// end is the head or the base of a pull request.
type end struct {
	Ref  string   `json:"ref"`
	SHA  string   `json:"sha"`
	Repo *repoRef `json:"repo"`
}

// ParseWebhook verifies X-Hub-Signature-256 over the raw body with the
// project's secret, in constant time, before anything else; then maps the
// X-GitHub-Event:
//
//   - push of a branch → EventPush at "after", of a tag → EventTag at
//     "head_commit.id" (for an annotated tag "after" is the tag object); a
//     deleted ref or a push whose head_commit is null → forge.ErrIgnoredEvent.
//     A push with an empty "commits" but a head commit (a branch or tag created
//     at an existing commit, a force push back) builds that commit;
//   - pull_request with action opened, synchronize or reopened →
//     EventPullRequest at the head commit, ref refs/pull/N/head; other actions →
//     forge.ErrIgnoredEvent. Trust is TrustSameRepository only when the head and
//     base repositories are named and the same, TrustFork when they differ,
//     TrustUnknown when the head repository is gone (a deleted fork);
//   - ping and every other event → forge.ErrIgnoredEvent (the gateway answers 200).
//
// Trigger.Repository is the payload's repository.full_name; the gateway compares
// it with the project's (MatchesRepository).
func (f *Forge) ParseWebhook(header http.Header, body []byte, secret []byte) (forge.Trigger, error) {
	if err := forge.VerifySignature(header.Get(forge.SignatureHeader), body, secret); err != nil {
		return forge.Trigger{}, err
	}
	return parse(header, body)
}

func bad(format string, args ...any) (forge.Trigger, error) {
	return forge.Trigger{}, fmt.Errorf("%w: %s", forge.ErrBadPayload, forge.Bound(fmt.Sprintf(format, args...)))
}

func ignored(format string, args ...any) (forge.Trigger, error) {
	return forge.Trigger{}, fmt.Errorf("%w: %s", forge.ErrIgnoredEvent, forge.Bound(fmt.Sprintf(format, args...)))
}

func parse(header http.Header, body []byte) (forge.Trigger, error) {
	if len(body) > MaxBodySize {
		return bad("body is %d bytes, more than %d", len(body), MaxBodySize)
	}
	event := header.Get(HeaderEvent)
	if event == "" {
		return bad("no %s header", HeaderEvent)
	}
	if len(event) > maxEventLength || strings.ContainsFunc(event, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return bad("%s header is not an event name", HeaderEvent)
	}
	if ct := header.Get("Content-Type"); strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return bad("the webhook sends form data: set its content type to application/json on GitHub")
	}
	delivery := header.Get(HeaderDelivery)
	if !forge.ValidDeliveryID(delivery) {
		return bad("%s must be at most %d letters, digits and . _ : -", HeaderDelivery, forge.MaxDeliveryIDLength)
	}
	raw, err := decodeObject(body)
	if err != nil {
		return bad("body is not a JSON object: %v", err)
	}

	var t forge.Trigger
	switch event {
	case "push":
		t, err = parsePush(body)
	case "pull_request":
		t, err = parsePullRequest(body)
	case "ping":
		return ignored("ping")
	default:
		return ignored("%s events do not start runs", event)
	}
	if err != nil {
		return forge.Trigger{}, err
	}
	if err := forge.ValidateRef(t.Ref); err != nil {
		return bad("ref: %v", err)
	}
	if err := forge.CheckText(t.Actor, maxActorLength); err != nil {
		return bad("sender: %v", err)
	}
	if _, _, err := SplitRepository(t.Repository); err != nil {
		return bad("repository.full_name: %v", err)
	}
	t.DeliveryID = delivery
	t.Payload = raw
	return t, nil
}

func parsePush(body []byte) (forge.Trigger, error) {
	var p push
	if err := json.Unmarshal(body, &p); err != nil {
		return bad("push: %v", err)
	}
	if p.Ref == "" {
		return bad(`push: "ref" is missing`)
	}
	if !strings.HasPrefix(p.Ref, "refs/") {
		return bad(`push: "ref" %q is not a full ref`, p.Ref)
	}
	sha := strings.ToLower(p.After)
	if err := forge.ValidateSHA(sha); err != nil {
		return bad(`push: "after": %v`, err)
	}
	if p.Deleted || sha == strings.Repeat("0", 40) {
		return ignored("%s was deleted", p.Ref)
	}
	if p.HeadCommit == nil {
		return ignored("push to %s has no head commit", p.Ref)
	}
	if p.Repository == nil {
		return bad(`push: "repository" is missing`)
	}
	t := forge.Trigger{Event: forge.EventPush, Ref: p.Ref, SHA: sha, Repository: p.Repository.FullName, Trust: forge.TrustSameRepository}
	if tag, ok := strings.CutPrefix(p.Ref, "refs/tags/"); ok {
		// For an annotated tag "after" is the tag object, which is no commit: build
		// the commit it points to, head_commit (set on every tag push since
		// https://github.blog/changelog/2021-10-01-the-push-webhook-payload-provides-a-consistent-head_commit-on-tag-creation/).
		t.Event, t.Tag = forge.EventTag, tag
		t.SHA = strings.ToLower(p.HeadCommit.ID)
		if err := forge.ValidateSHA(t.SHA); err != nil {
			return bad(`push: "head_commit.id": %v`, err)
		}
	} else if branch, ok := strings.CutPrefix(p.Ref, "refs/heads/"); ok {
		t.Branch = branch
	} else {
		return ignored("push to %s, neither a branch nor a tag", p.Ref)
	}
	switch {
	case p.Sender != nil && p.Sender.Login != "":
		t.Actor = p.Sender.Login
	case p.Pusher != nil:
		t.Actor = p.Pusher.Name
	}
	return t, nil
}

func parsePullRequest(body []byte) (forge.Trigger, error) {
	var p pullRequest
	if err := json.Unmarshal(body, &p); err != nil {
		return bad("pull_request: %v", err)
	}
	if p.Action == "" {
		return bad(`pull_request: "action" is missing`)
	}
	if !startingActions[p.Action] {
		return ignored("pull_request %s does not start a run (opened, synchronize and reopened do)", p.Action)
	}
	if p.PullRequest == nil {
		return bad(`pull_request: "pull_request" is missing`)
	}
	if p.Repository == nil {
		return bad(`pull_request: "repository" is missing`)
	}
	number := p.Number
	if number == 0 {
		number = p.PullRequest.Number
	}
	if number <= 0 {
		return bad(`pull_request: "number" is missing`)
	}
	sha := strings.ToLower(p.PullRequest.Head.SHA)
	if err := forge.ValidateSHA(sha); err != nil {
		return bad(`pull_request: "pull_request.head.sha": %v`, err)
	}
	t := forge.Trigger{
		Event:      forge.EventPullRequest,
		Ref:        "refs/pull/" + strconv.FormatInt(number, 10) + "/head",
		SHA:        sha,
		Repository: p.Repository.FullName,
		Trust:      trust(p.PullRequest.Head.Repo, p.PullRequest.Base.Repo),
		BaseBranch: strings.TrimPrefix(p.PullRequest.Base.Ref, "refs/heads/"),
	}
	if forge.CheckText(t.BaseBranch, 255) != nil {
		t.BaseBranch = ""
	}
	if p.Sender != nil {
		t.Actor = p.Sender.Login
	}
	return t, nil
}

// trust decides whose code a pull request builds: the same repository only when
// both ends name one and it is the same (GitHub's names ignore case); a fork
// when they differ; unknown when either is missing (a deleted fork has a null
// head.repo).
func trust(head, base *repoRef) forge.Trust {
	switch {
	case head == nil || base == nil || head.FullName == "" || base.FullName == "":
		return forge.TrustUnknown
	case strings.EqualFold(head.FullName, base.FullName):
		return forge.TrustSameRepository
	}
	return forge.TrustFork
}

// decodeObject decodes one JSON object, numbers as json.Number so large ids survive.
func decodeObject(body []byte) (map[string]any, error) {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, fmt.Errorf("null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return raw, nil
}
