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

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
	"github.com/simpleci/simpleci/libs/forge/netguard"
	"github.com/simpleci/simpleci/libs/platform/node"
)

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
		r, err := forge.NewRegistry(l)
		return r, nil, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*forge.Registry), nil
}
