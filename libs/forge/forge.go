// Package forge is the provider-neutral face of a git hosting service (a "forge"):
// GitHub, GitLab, Bitbucket, or a plain git repository (package forge/local).
//
// The gateway turns a webhook delivery into a [Trigger] with [Forge.ParseWebhook];
// the scheduler reads the pipeline definition at the pushed commit with
// [Forge.ReadFile]; the runner gets a working tree with [Forge.Checkout]. Callers
// look a provider up by name in a [Registry] and never import a provider package
// beyond wiring it up.
package forge

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Events a Trigger can carry. They are the values users pick as "what starts a
// run" in the project settings, so they are permanent.
const (
	EventPush        = "push"
	EventPullRequest = "pull_request"
	EventTag         = "tag"
	EventManual      = "manual"
)

// Trigger is a webhook delivery turned provider-neutral: what happened, to which
// commit, and who did it. It is what the gateway puts into RunRequested.
type Trigger struct {
	// Event is one of EventPush, EventPullRequest, EventTag, EventManual.
	Event string
	// Ref is the full git ref that moved, e.g. "refs/heads/main" or "refs/tags/v1.2".
	Ref string
	// Branch is Ref without "refs/heads/" when Ref is a branch, else empty.
	Branch string
	// Tag is Ref without "refs/tags/" when Ref is a tag, else empty.
	Tag string
	// BaseBranch is the branch a pull request targets (its caches are read by the pull
	// request's runs), when the delivery says; else empty.
	BaseBranch string
	// SHA is the commit to build: 40 lowercase hex digits.
	SHA string
	// Actor is the provider's login of whoever caused the event (may be empty).
	Actor string
	// DeliveryID is the provider's id of this delivery, used to drop redeliveries.
	// Empty when the sender did not supply one.
	DeliveryID string
	// Repository names the repository as the provider knows it (e.g. "owner/name"),
	// so a delivery can be matched to a project when the URL does not name one.
	// May be empty.
	Repository string
	// Payload is the decoded JSON body, for pipeline conditions and templates.
	// Numbers are json.Number so large ids survive.
	Payload map[string]any
	// Trust says whose code the commit is, as the provider's delivery states it:
	// TrustSameRepository for a push, a tag or a manual event of the repository
	// and for a pull request whose head is in the repository it targets,
	// TrustFork for a pull request from another repository, TrustUnknown when
	// the delivery does not say. Only a provider sets it, never a user's input;
	// the scheduler gives a pull request secrets and the network only when it is
	// TrustSameRepository.
	Trust Trust
}

// Trust is whose code a Trigger builds (see Trigger.Trust).
type Trust int

// The values of Trust. The zero value is TrustUnknown, so a provider that forgets
// to decide fails closed.
const (
	TrustUnknown Trust = iota
	TrustSameRepository
	TrustFork
)

// String is the name the API shows: "unknown", "same_repository" or "fork".
func (t Trust) String() string {
	switch t {
	case TrustSameRepository:
		return "same_repository"
	case TrustFork:
		return "fork"
	}
	return "unknown"
}

// Errors a Forge returns, wrapped with context; test them with errors.Is.
var (
	// ErrBadSignature means the delivery is not signed with the project's secret
	// (missing, malformed or wrong signature header, or no secret configured).
	// The gateway answers 401 and never looks at the body.
	ErrBadSignature = errors.New("forge: webhook signature missing or invalid")
	// ErrBadPayload means a correctly signed delivery could not be understood
	// (not JSON, missing or invalid fields, unknown event). The gateway answers 400.
	ErrBadPayload = errors.New("forge: webhook payload invalid")
	// ErrIgnoredEvent means the delivery is valid but never starts a run
	// (a ping, a branch deletion). The gateway answers 200 and does nothing.
	ErrIgnoredEvent = errors.New("forge: event does not start a run")
	// ErrNotFound means the repository, commit, ref or file does not exist.
	ErrNotFound = errors.New("forge: not found")
	// ErrInvalid means an argument (repository, ref, sha, path) was refused
	// before any provider was asked, e.g. a path that climbs out with "..".
	ErrInvalid = errors.New("forge: invalid argument")
	// ErrNotAllowed means the repository is one this server may not read: a
	// path outside the operator's repository roots (or leading out of them
	// through a symbolic link), a URL whose host is a loopback, private,
	// link-local or metadata address, or a URL with credentials in it.
	ErrNotAllowed = errors.New("forge: repository not allowed")
	// ErrTooLarge means a file is larger than the provider is willing to read.
	ErrTooLarge = errors.New("forge: file too large")
	// ErrUnknownProvider means a Registry has no forge of the requested name.
	ErrUnknownProvider = errors.New("forge: unknown provider")
)

// Forge is one git hosting provider. Implementations are safe for concurrent use.
//
// The repo argument is whatever the project stores as its repository: "owner/name"
// for hosted providers, a path or URL for package local.
type Forge interface {
	// Name is the provider's registry name and the {provider} in the webhook URL,
	// e.g. "github" or "local".
	Name() string

	// ParseWebhook verifies the signature over the raw body with the project's
	// secret (in constant time) and only then parses the body into a Trigger.
	// It returns ErrBadSignature, ErrBadPayload or ErrIgnoredEvent (wrapped).
	ParseWebhook(header http.Header, body []byte, secret []byte) (Trigger, error)

	// ReadFile returns the content of path (slash-separated, relative to the
	// repository root) at commit sha. It returns ErrNotFound when the commit or
	// the file does not exist, ErrInvalid for a hostile path or malformed sha.
	ReadFile(ctx context.Context, repo, sha, path string) ([]byte, error)

	// ResolveRef turns a branch, tag, full ref or commit id into a commit sha.
	// It returns ErrNotFound when nothing matches.
	ResolveRef(ctx context.Context, repo, ref string) (sha string, err error)

	// Checkout puts a fresh working tree of commit sha into dir, which must be
	// empty or not exist yet. HEAD is detached at sha.
	Checkout(ctx context.Context, repo, sha, dir string) error
}

// MaxCommitMessage bounds the commit message a CommitReader returns: the run's
// RunQueued event carries it and events stay small (event.MaxEventBytes).
const MaxCommitMessage = 1 << 10

// CommitReader is the optional capability of a forge that reads a commit's message
// (the scheduler records it with the run it queues). Callers test for it with a type
// assertion.
type CommitReader interface {
	// CommitMessage returns the message of commit sha, cut to MaxCommitMessage bytes
	// (at a character boundary) with trailing white space removed. It returns
	// ErrNotFound when the commit does not exist, ErrInvalid for a malformed sha.
	CommitMessage(ctx context.Context, repo, sha string) (string, error)
}

// BoundCommitMessage makes a commit message fit for a RunQueued event: invalid
// UTF-8 replaced, trailing white space removed, cut to MaxCommitMessage bytes
// (Truncate: on a character boundary, with a marker).
func BoundCommitMessage(m string) string {
	return Truncate(strings.TrimRight(strings.ToValidUTF8(m, "\uFFFD"), " \t\r\n"), MaxCommitMessage)
}

// StatusState is the outcome a commit status reports (see StatusReporter).
type StatusState string

// The states of a commit status, named as GitHub names them.
const (
	StatusPending StatusState = "pending"
	StatusSuccess StatusState = "success"
	StatusFailure StatusState = "failure"
	StatusError   StatusState = "error"
)

// Status is what a StatusReporter shows on a commit.
type Status struct {
	State StatusState
	// TargetURL links the status to the run (may be empty).
	TargetURL string
	// Description is one short sentence (a provider may cut it).
	Description string
	// Context names the reporter on the commit, e.g. "simpleci".
	Context string
}

// StatusReporter is the optional capability of a forge that can show a run's
// state on the commit it built (a GitHub commit status). Callers test for it
// with a type assertion; a forge without it (local) shows nothing.
type StatusReporter interface {
	SetStatus(ctx context.Context, repo, sha string, st Status) error
}

// RepositoryMatcher is the optional capability of a forge whose deliveries name
// the repository they are about (Trigger.Repository): the gateway refuses a
// delivery for another repository than the project's with MatchesRepository.
type RepositoryMatcher interface {
	// MatchesRepository reports whether a delivery naming delivered belongs to
	// a project whose repository is project.
	MatchesRepository(project, delivered string) bool
}

// Hook is a repository webhook as a HookManager registers it.
type Hook struct {
	// URL is where the provider delivers, e.g.
	// https://ci.example.com/api/v1/webhooks/github/{project}.
	URL string
	// Secret signs every delivery; the provider never shows it back.
	Secret string
	// Events are the project's events (EventPush, EventTag, EventPullRequest,
	// ...); the HookManager maps them to the provider's and leaves out those
	// that need no delivery (manual, schedule).
	Events []string
}

// HookManager is the optional capability of a forge that registers the webhook
// of a project on the repository (GitHub: POST /repos/{o}/{r}/hooks). Callers
// test for it with a type assertion; a forge without it (local) is sent
// deliveries by whoever set the repository up.
type HookManager interface {
	// CreateHook registers h on repo and returns the provider's id of it.
	CreateHook(ctx context.Context, repo string, h Hook) (id int64, err error)
	// UpdateHook sets the events of hook id (URL and secret as given).
	UpdateHook(ctx context.Context, repo string, id int64, h Hook) error
	// DeleteHook removes hook id; a hook that is already gone is not an error.
	DeleteHook(ctx context.Context, repo string, id int64) error
}

// CheckStatus is where a check run is: queued, in progress or completed.
type CheckStatus string

// The states of a check run, named as GitHub names them.
const (
	CheckQueued     CheckStatus = "queued"
	CheckInProgress CheckStatus = "in_progress"
	CheckCompleted  CheckStatus = "completed"
)

// Check is a run shown as a check on its commit: more than a Status, with a
// title, a summary of the steps and the run's start and end.
type Check struct {
	// Name names the check on the commit, e.g. "simpleci".
	Name   string
	Status CheckStatus
	// Conclusion is set when Status is CheckCompleted: success, failure,
	// cancelled, timed_out, neutral, skipped or action_required.
	Conclusion string
	// DetailsURL links to the run; ExternalID is the run's id.
	DetailsURL, ExternalID string
	// Title is one line; Summary is Markdown (a provider may cut both).
	Title, Summary string
	StartedAt      time.Time
	CompletedAt    time.Time
}

// CheckReporter is the optional capability of a forge that can show a run as a
// check on its commit (a GitHub check run, which only a GitHub App may create).
// ReportsChecks says whether this forge's configuration allows it.
type CheckReporter interface {
	ReportsChecks() bool
	// CreateCheck shows c on commit sha of repo and returns the provider's id.
	CreateCheck(ctx context.Context, repo, sha string, c Check) (id int64, err error)
	// UpdateCheck replaces what check id shows.
	UpdateCheck(ctx context.Context, repo string, id int64, c Check) error
}

// HookStatus is a registered hook as the provider reports it: whether it is active
// and its last delivery (GitHub's last_response: code 0 and status "unused" before
// the first).
type HookStatus struct {
	Active      bool
	LastCode    int
	LastStatus  string
	LastMessage string
}

// HookInspector is the optional capability of a HookManager that reads a hook back
// (GitHub: GET /repos/{o}/{r}/hooks/{id}), to show whether it is live.
type HookInspector interface {
	HookStatus(ctx context.Context, repo string, id int64) (HookStatus, error)
}
