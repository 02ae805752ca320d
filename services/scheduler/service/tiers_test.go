package service

import (
	"strings"
	"testing"
	"time"
)

func TestTierLogLimits(t *testing.T) {
	tiers := func(specs ...string) (map[string]Tier, error) {
		t.Setenv("SIMPLECI_TIERS", "")
		return (&Component{TierSpecs: specs}).Tiers()
	}
	got, err := tiers()
	if err != nil {
		t.Fatal(err)
	}
	if s := got["standard"]; s.StepLog != 16<<20 || s.RunLog != 64<<20 {
		t.Errorf("standard caps %d/%d, want 16 MiB per step and 64 MiB per run", s.StepLog, s.RunLog)
	}
	got, err = tiers("standard:log-step=1MiB,log-run=2MiB", "tiny:timeout=10s,log-run=512KiB")
	if err != nil {
		t.Fatal(err)
	}
	if s := got["standard"]; s.StepLog != 1<<20 || s.RunLog != 2<<20 {
		t.Errorf("overridden standard caps %d/%d, want 1 MiB and 2 MiB", s.StepLog, s.RunLog)
	}
	if s := got["tiny"]; s.Queue != DefaultQueue {
		t.Errorf("a new tier's queue limit: %s, want the default %s", s.Queue, DefaultQueue)
	}
	if got, err := tiers("large:queue=15m"); err != nil || got["large"].Queue != 15*time.Minute || got["standard"].Queue != DefaultQueue {
		t.Errorf("queue limits: %v %v", got, err)
	}
	if s := got["tiny"]; s.StepLog != 512<<10 || s.RunLog != 512<<10 {
		t.Errorf("a new tier with only a run cap: %d/%d, want the step cap no larger than the run's", s.StepLog, s.RunLog)
	}
	for spec, want := range map[string]string{
		"standard:log-step=128MiB": "log-step (134217728 bytes) is larger than log-run (67108864 bytes)",
		"standard:log-run=lots":    "tier standard: log-run=lots: want a positive size",
		"standard:log=1MiB":        "unknown key (timeout, queue, memory, pids, cpus, steps, log-step, log-run)",
		"standard:queue=0s":        "tier standard: queue=0s: must be positive",
	} {
		if _, err := tiers(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", spec, err, want)
		}
	}
}
