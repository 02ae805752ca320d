package service

import (
	"context"

	"github.com/simpleci/simpleci/libs/platform/auth"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ListTiers lists the tiers this scheduler serves: the deployment's one definition of
// tier names (the project service accepts exactly these, runners may serve only these).
func (s *Service) ListTiers(ctx context.Context, _ *apiv1.ListTiersRequest) (*apiv1.ListTiersResponse, error) {
	if !auth.IsInternal(ctx) {
		if _, err := requireOrg(ctx); err != nil {
			return nil, err
		}
	}
	resp := &apiv1.ListTiersResponse{}
	for _, n := range s.tierNames() {
		t := s.cfg.Tiers[n]
		resp.Tiers = append(resp.Tiers, &apiv1.Tier{Name: t.Name, MemoryBytes: t.Memory, Pids: t.Pids, Cpus: t.CPUs,
			Timeout: durationpb.New(t.Timeout), MaxSteps: int32(t.Steps),
			StepLogBytes: t.StepLog, RunLogBytes: t.RunLog})
	}
	return resp, nil
}
