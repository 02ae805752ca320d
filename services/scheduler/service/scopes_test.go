package service_test

import (
	"slices"
	"testing"

	"github.com/simpleci/simpleci/services/scheduler/service"
)

// A pull request reads its base branch's caches and writes only its own scope.
func TestCacheScopes(t *testing.T) {
	for _, c := range []struct {
		ctx   map[string]string
		write string
		read  []string
	}{
		{map[string]string{"event": "push", "branch": "main", "ref": "refs/heads/main"}, "branch:main", []string{"branch:main"}},
		{map[string]string{"event": "pull_request", "ref": "refs/pull/7/head", "base_branch": "main"}, "pr:7", []string{"pr:7", "branch:main"}},
		{map[string]string{"event": "pull_request", "branch": "feature", "ref": "refs/heads/feature"}, "pr:feature", []string{"pr:feature"}},
		{map[string]string{"event": "tag", "ref": "refs/tags/v1"}, "ref:refs/tags/v1", []string{"ref:refs/tags/v1"}},
	} {
		w, r := service.CacheScopes(c.ctx)
		if w != c.write || !slices.Equal(r, c.read) {
			t.Errorf("%v: write %q read %q, want %q %q", c.ctx, w, r, c.write, c.read)
		}
	}
}
