// Package nodeforge gives a node process's services one registry of git providers,
// with the repository mirrors in the data directory, the repository roots
// (--local-repos) and the networks repository URLs may reach (--allow-repo-network).
// Every service that touches a repository (project, gateway, scheduler, runner)
// uses it, so the same rules hold wherever a path or URL is used.
package nodeforge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/github"
	"github.com/simpleci/simpleci/libs/forge/local"
	"github.com/simpleci/simpleci/libs/forge/netguard"
	"github.com/simpleci/simpleci/libs/platform/node"
)

// GitEnv picks from a process environment what git may see of it besides PATH: how to
// reach repository credentials the operator gave the server (an ssh agent, git
// configuration such as an http.extraHeader) and certificate locations. Proxies are
// not passed on: a proxy resolves hosts itself, past the address check.
func GitEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "SSH_AUTH_SOCK", k == "SSL_CERT_FILE", k == "SSL_CERT_DIR", k == "GIT_CONFIG_COUNT",
			strings.HasPrefix(k, "GIT_CONFIG_KEY_"), strings.HasPrefix(k, "GIT_CONFIG_VALUE_"):
			out = append(out, kv)
		}
	}
	return out
}

// Open returns the process's forge registry (made on first use).
func Open(env *node.Env) (*forge.Registry, error) {
	v, err := env.Shared("forges", node.CloseStore, func() (any, func(), error) {
		mirrors := filepath.Join(os.TempDir(), "simpleci-mirrors")
		if env.Config.DataDir != "" {
			mirrors = filepath.Join(env.Config.DataDir, "mirrors")
		}
		networks, err := netguard.ParseNetworks(env.Config.AllowRepoNetworks)
		if err != nil {
			return nil, nil, fmt.Errorf("--allow-repo-network: %w", err)
		}
		l, err := local.New(local.Options{MirrorDir: mirrors, LocalRoots: env.Config.LocalRepos,
			LocalRepositories: env.Config.LocalRepositories, AllowNetworks: networks})
		if err != nil {
			return nil, nil, err
		}
		forges := []forge.Forge{l}
		if env.Config.GitHub.Enabled() {
			g, err := openGitHub(env.Config.GitHub, networks)
			if err != nil {
				return nil, nil, err
			}
			forges = append(forges, g)
		}
		r, err := forge.NewRegistry(forges...)
		return r, nil, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*forge.Registry), nil
}

// maxTokenFile bounds a token file: a token is a line, not a document.
const maxTokenFile = 4 << 10

// openGitHub makes the github forge from the operator's configuration, reading
// the token file (one line; surrounding white space dropped).
func openGitHub(c node.GitHub, networks []netip.Prefix) (*github.Forge, error) {
	var token string
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("--github-token-file: %w", err)
		}
		if len(b) > maxTokenFile {
			return nil, fmt.Errorf("--github-token-file %s: %d bytes is no token", c.TokenFile, len(b))
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, fmt.Errorf("--github-token-file %s is empty", c.TokenFile)
		}
	}
	var key []byte
	if c.AppKeyFile != "" {
		b, err := os.ReadFile(c.AppKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--github-app-key-file: %w", err)
		}
		key = b
	}
	if (c.AppID != 0) != (key != nil) {
		return nil, errors.New("--github-app-id and --github-app-key-file go together (the id a positive number)")
	}
	g, err := github.New(github.Options{APIURL: c.APIURL, WebURL: c.URL, Token: token, AppID: c.AppID, AppKey: key, AllowNetworks: networks})
	if err != nil {
		return nil, fmt.Errorf("--github-*: %w", err)
	}
	return g, nil
}
