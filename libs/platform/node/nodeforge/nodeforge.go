// Package nodeforge gives a node process's services one registry of git providers,
// with the repository mirrors in the data directory, the repository roots
// (--local-repos) and the networks repository URLs may reach (--allow-repo-network).
// Every service that touches a repository (project, gateway, scheduler, runner)
// uses it, so the same rules hold wherever a path or URL is used.
package nodeforge

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/simpleci/simpleci/libs/forge"
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
			LocalRepositories: env.Config.LocalRepositories, AllowNetworks: networks, Env: GitEnv(os.Environ())})
		if err != nil {
			return nil, nil, err
		}
		r, err := forge.NewRegistry(l)
		return r, nil, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*forge.Registry), nil
}
