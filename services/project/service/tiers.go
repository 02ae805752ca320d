package service

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TierSource lists the tiers the deployment serves (the scheduler's ListTiers).
type TierSource func(ctx context.Context) ([]string, error)

// SchedulerTiers asks the scheduler which tiers it serves, remembering the answer for
// ttl: the scheduler's configuration (`--tier`) is the one definition of tier names.
func SchedulerTiers(c apiv1.RunServiceClient, ttl time.Duration) TierSource {
	var mu sync.Mutex
	var names []string
	var at time.Time
	return func(ctx context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if names != nil && time.Since(at) < ttl {
			return names, nil
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := c.ListTiers(ctx, &apiv1.ListTiersRequest{})
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for _, t := range resp.GetTiers() {
			names = append(names, t.GetName())
		}
		at = time.Now()
		return slices.Clone(names), nil
	}
}

// WithTiers sets where the service learns the served tiers; without it no tier is
// accepted.
func (s *Service) WithTiers(src TierSource) { s.tierSource = src }

// checkTier returns the tier a project asks for ("" means standard) when the deployment
// serves it, a problem to report when it does not, or an error when the served tiers
// cannot be learnt now.
func (s *Service) checkTier(ctx context.Context, tier string) (string, string, error) {
	if s.tierSource == nil {
		return "", "", status.Error(codes.FailedPrecondition, "no tiers are configured")
	}
	served, err := s.tierSource(ctx)
	if err != nil {
		return "", "", status.Errorf(codes.Unavailable, "cannot learn the served tiers from the scheduler now: %v", status.Convert(err).Message())
	}
	if tier == "" {
		tier = "standard"
	}
	if !slices.Contains(served, tier) {
		return "", fmt.Sprintf("tier %q: this deployment serves %s", tier, strings.Join(served, ", ")), nil
	}
	return tier, "", nil
}
