package service

import (
	"testing"
	"time"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

func TestNetworkSetting(t *testing.T) {
	for _, tt := range []struct {
		setting string
		trusted bool
		want    bool
	}{
		{"default", true, true}, {"", true, true}, {"default", false, false},
		{"on", false, false}, {"on", true, true}, {"off", true, false}, {"off", false, false},
	} {
		if got := network(tt.setting, tt.trusted); got != tt.want {
			t.Errorf("network(%q, trusted=%v) = %v, want %v", tt.setting, tt.trusted, got, tt.want)
		}
	}
}

// A run gets secrets and the network only when the forge vouched for its code; the
// run's context (which a user may fill) has no say, and events recorded before the
// trust field existed read as unknown for a pull request and as the same repository
// for anything else.
func TestRunTrust(t *testing.T) {
	for _, tt := range []struct {
		event   string
		trust   eventsv1.Trust
		context map[string]string
		want    string
		trusted bool
	}{
		{"push", eventsv1.Trust_TRUST_UNSPECIFIED, nil, "same_repository", true}, // stored before the field
		{"manual", eventsv1.Trust_TRUST_UNSPECIFIED, nil, "same_repository", true},
		{"tag", eventsv1.Trust_TRUST_SAME_REPOSITORY, nil, "same_repository", true},
		{"pull_request", eventsv1.Trust_TRUST_UNSPECIFIED, nil, "unknown", false}, // stored before the field
		{"pull_request", eventsv1.Trust_TRUST_UNSPECIFIED, map[string]string{"fork": "false", "trust": "same_repository"}, "unknown", false},
		{"pull_request", eventsv1.Trust_TRUST_FORK, nil, "fork", false},
		{"pull_request", eventsv1.Trust_TRUST_SAME_REPOSITORY, nil, "same_repository", true},
		{"push", eventsv1.Trust_TRUST_FORK, nil, "fork", false},
	} {
		r := &domain.Run{}
		r.Apply(&eventsv1.RunQueued{RunId: "r", Event: tt.event, Trust: tt.trust, Context: tt.context, Network: "default"}, time.Now())
		job := jobFor(r, "lease", time.Minute, Tier{})
		if got := job.Context["trust"]; got != tt.want || r.Trusted() != tt.trusted || job.Network != tt.trusted {
			t.Errorf("%s with %s, context %v: trust %q trusted %v network %v, want %q %v %v", tt.event, tt.trust, tt.context,
				got, r.Trusted(), job.Network, tt.want, tt.trusted, tt.trusted)
		}
		if got := toAPI(r, false).GetTrust(); got != tt.want {
			t.Errorf("%s with %s: API trust %q, want %q", tt.event, tt.trust, got, tt.want)
		}
	}
}
