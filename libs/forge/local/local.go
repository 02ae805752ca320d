// Package local is the forge for a plain git repository: a path on this machine
// (for self-hosting and the offline demo of `simpleci dev`) or any git URL.
//
// A repository is named by an absolute path ("/srv/git/app.git", a bare or a
// non-bare repository), a file:// URL (read like a path), or an https://
// (ssh://, and if enabled http://, git://) URL. Paths are read in place; URL
// repositories are fetched into a bare mirror under Options.MirrorDir and read
// from there.
//
// Webhooks are GitHub-push-like JSON posted by whoever watches the repository
// (a post-receive hook, a script, the CLI); see ParseWebhook.
//
// Path repositories must lie under Options.LocalRoots; URL repositories may
// not reach loopback, private, link-local or metadata addresses unless
// Options.AllowNetworks allows them (see CheckRepository).
//
// git is always run directly (never through a shell) with a deadline, a
// scrubbed environment, no global or system configuration, no terminal
// prompts, hooks disabled, and only the allowed transports.
package local

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/netguard"
)

// Name is the provider name of this forge in a forge.Registry and in the
// webhook URL /api/v1/webhooks/local/{project}.
const Name = "local"

// Defaults for Options fields left zero.
const (
	DefaultTimeout     = 10 * time.Minute
	DefaultMaxFileSize = 4 << 20
)

// DefaultProtocols are the git transports allowed when Options.Protocols is nil.
// "ext" and "fd" (which run commands) are never allowed.
var DefaultProtocols = []string{"file", "https", "ssh"}

// Options configure a Forge. The zero value works for path repositories.
type Options struct {
	// MirrorDir holds one bare mirror per URL repository. Required to read
	// files from or resolve commits of URL repositories; path repositories
	// never use it.
	MirrorDir string
	// Git is the git executable; default "git" found in PATH.
	Git string
	// Timeout bounds each git invocation (a fetch of a large repository is one);
	// default DefaultTimeout. A shorter deadline on the context wins.
	Timeout time.Duration
	// MaxFileSize is the largest file ReadFile returns; default DefaultMaxFileSize.
	MaxFileSize int64
	// Protocols are the git transports allowed (GIT_ALLOW_PROTOCOL), e.g.
	// "file", "https", "ssh", "http", "git"; default DefaultProtocols.
	// "file" is needed for path repositories.
	Protocols []string
	// Env is added to git's otherwise scrubbed environment, e.g.
	// "HTTPS_PROXY=...", "SSH_AUTH_SOCK=...", "SSL_CERT_FILE=...". A proxy
	// resolves hosts itself: the address check (AllowNetworks) then sees only
	// the name, once.
	Env []string
	// LocalRoots are the directories a path repository must lie under: strictly
	// inside one of them once symbolic links are resolved (a path with ".." is
	// refused outright). Empty refuses every path repository.
	LocalRoots []string
	// LocalRepositories are single repositories allowed besides those under
	// LocalRoots (`simpleci dev` allows its demo repository so), by their path
	// with symbolic links resolved.
	LocalRepositories []string
	// AllowNetworks are networks a URL repository may reach although they are
	// loopback, private, link-local, metadata or otherwise internal addresses,
	// which are refused by default (package netguard). git is pinned to the
	// addresses checked, so a name cannot resolve to another when git connects.
	AllowNetworks []netip.Prefix
}

// Forge is the local provider. It is safe for concurrent use.
type Forge struct {
	git         string
	mirrorDir   string
	timeout     time.Duration
	maxFileSize int64
	protocols   map[string]bool
	env         []string
	roots       []string
	repos       []string
	guard       *netguard.Guard

	mirrorsMu sync.Mutex
	mirrors   map[string]chan struct{} // one-slot semaphore per mirror: fetches into a mirror are serialized
}

var _ forge.Forge = (*Forge)(nil)

// New returns a local forge. It fails when git cannot be found or an option is
// invalid.
func New(opts Options) (*Forge, error) {
	var problems []error
	gitBin := opts.Git
	if gitBin == "" {
		gitBin = "git"
	}
	gitPath, err := exec.LookPath(gitBin)
	if err != nil {
		problems = append(problems, fmt.Errorf("git executable %q not found: install git or set Options.Git: %w", gitBin, err))
	}
	if opts.Timeout < 0 {
		problems = append(problems, fmt.Errorf("timeout %s is negative", opts.Timeout))
	}
	if opts.MaxFileSize < 0 {
		problems = append(problems, fmt.Errorf("max file size %d is negative", opts.MaxFileSize))
	}
	protos := opts.Protocols
	if protos == nil {
		protos = DefaultProtocols
	}
	allowed := make(map[string]bool, len(protos))
	for _, p := range protos {
		switch p {
		case "file", "https", "http", "ssh", "git":
			allowed[p] = true
		default:
			problems = append(problems, fmt.Errorf("protocol %q is not allowed (choose from file, https, http, ssh, git)", p))
		}
	}
	for _, kv := range opts.Env {
		if !validEnv(kv) {
			problems = append(problems, fmt.Errorf("environment entry %q is not KEY=VALUE", kv))
		}
	}
	var roots []string
	for _, root := range opts.LocalRoots {
		abs, err := filepath.Abs(root)
		if err != nil || root == "" {
			problems = append(problems, fmt.Errorf("repository root %q: not a usable path", root))
			continue
		}
		if abs == string(filepath.Separator) {
			problems = append(problems, fmt.Errorf("repository root %q: the whole file system cannot be a repository root", root))
			continue
		}
		roots = append(roots, abs)
	}
	var repos []string
	for _, repo := range opts.LocalRepositories {
		abs, err := filepath.Abs(repo)
		if err != nil || repo == "" || abs == string(filepath.Separator) {
			problems = append(problems, fmt.Errorf("allowed repository %q: not a usable path", repo))
			continue
		}
		repos = append(repos, abs)
	}
	if gitPath != "" && (allowed["https"] || allowed["http"]) {
		if major, minor, ok := gitVersion(gitPath); ok && (major < 2 || major == 2 && minor < 37) {
			problems = append(problems, fmt.Errorf("git %d.%d cannot pin an http(s) connection to the addresses checked (http.curloptResolve needs git 2.37 or later): upgrade git or leave http and https out of the protocols", major, minor))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("local forge: %w", errors.Join(problems...))
	}
	f := &Forge{
		git:         gitPath,
		mirrorDir:   opts.MirrorDir,
		timeout:     opts.Timeout,
		maxFileSize: opts.MaxFileSize,
		protocols:   allowed,
		env:         append([]string(nil), opts.Env...),
		roots:       roots,
		repos:       repos,
		guard:       netguard.New(opts.AllowNetworks),
		mirrors:     make(map[string]chan struct{}),
	}
	if f.timeout == 0 {
		f.timeout = DefaultTimeout
	}
	if f.maxFileSize == 0 {
		f.maxFileSize = DefaultMaxFileSize
	}
	return f, nil
}

// gitVersion returns the version of the git at path ("git version 2.39.5").
func gitVersion(path string) (major, minor int, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	if err != nil {
		return 0, 0, false
	}
	v, found := strings.CutPrefix(strings.TrimSpace(string(out)), "git version ")
	if !found {
		return 0, 0, false
	}
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// Name returns "local".
func (f *Forge) Name() string { return Name }
