package service

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RepositoryChecker is implemented by a forge that can vet a repository before a
// project is bound to it (forge/local: paths under the repository roots, URLs to
// allowed addresses only). It returns the repository's canonical form and, for a
// path, every directory git reads it from (git directory, alternates).
type RepositoryChecker interface {
	CheckRepository(ctx context.Context, repo string) (canonical string, reads []string, err error)
}

// WithForges makes CreateProject vet repositories with the forges that implement
// RepositoryChecker.
func (s *Service) WithForges(r *forge.Registry) { s.forges = r }

// checkRepository vets the repository a project of org is to be bound to and returns
// the form to store. Refused: credentials in a URL (they would be shown back through
// the API, the run context and the events; the server holds repository credentials
// instead, docs/operations.md), whatever the provider's forge refuses (a path outside
// the repository roots, an internal address), and a path bound by a project of another
// organisation, or inside or around one (a tenant never reads another's repository).
// Messages are bounded and name no other tenant's project.
func (s *Service) checkRepository(ctx context.Context, org, provider, repo string) (string, error) {
	if forge.HasCredentials(repo) {
		return "", status.Errorf(codes.InvalidArgument, "repository %s: a repository URL may not hold credentials (user name, password or token): "+
			"they would be shown wherever the repository is; the server's operator gives git its credentials instead", forge.Bound(forge.Redact(repo)))
	}
	if s.forges == nil {
		return repo, nil
	}
	f, err := s.forges.Lookup(provider)
	if err != nil {
		return repo, nil // the provider was checked against s.providers
	}
	checker, ok := f.(RepositoryChecker)
	if !ok {
		return repo, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	canonical, reads, err := checker.CheckRepository(cctx, repo)
	cancel()
	switch {
	case errors.Is(err, forge.ErrNotAllowed):
		return "", status.Error(codes.PermissionDenied, forge.Bound(trimForge(err)))
	case errors.Is(err, forge.ErrNotFound): // a path that does not exist, a host that does not resolve
		return "", status.Error(codes.NotFound, forge.Bound(trimForge(err)))
	case err != nil:
		return "", status.Error(codes.InvalidArgument, forge.Bound(trimForge(err)))
	}
	if !strings.HasPrefix(canonical, "/") {
		return canonical, nil
	}
	// The repository, or any directory git reads it from (a .git that is a symbolic link
	// to a neighbour's), may not be, lie inside or contain another organisation's.
	for _, p := range append([]string{canonical}, reads...) {
		var n int
		err = s.db.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM projects WHERE provider = ? AND org_id <> ?
			AND (repository = ? OR repository = ? OR repository LIKE ? OR ? LIKE (repository || '/%'))`),
			provider, org, p, repo, p+"/%", p).Scan(&n)
		if err != nil {
			return "", status.Errorf(codes.Internal, "create project: %v", err)
		}
		if n > 0 {
			return "", status.Errorf(codes.PermissionDenied, "repository %s: it (or a directory around or inside it) is bound to a project of another organisation", forge.Bound(repo))
		}
	}
	return canonical, nil
}

// trimForge drops the "forge: " prefix of the sentinel errors, which says nothing to a user.
func trimForge(err error) string {
	return strings.TrimPrefix(err.Error(), "forge: ")
}
