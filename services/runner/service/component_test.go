package service

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/platform/node"
)

// TestComponentCredentials: a runner process takes its own token (its name comes from
// it) and refuses the deployment's internal token; without a token it starts only in a
// process that holds the deployment secret anyway.
func TestComponentCredentials(t *testing.T) {
	token := "scr_build-1_" + strings.Repeat("ab", 24)
	file := filepath.Join(t.TempDir(), "runner-token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := map[string]string{"scheduler": "127.0.0.1:1", "log": "127.0.0.1:2"}
	tests := []struct {
		name          string
		c             Component
		internal      string
		peers         map[string]string
		withScheduler bool   // the process runs the scheduler too
		want          string // "" = valid
		wantID        string
	}{
		{name: "token in the environment", c: Component{Token: token}, peers: remote, wantID: "build-1"},
		{name: "token in a file", c: Component{TokenFile: file}, peers: remote, wantID: "build-1"},
		{name: "the same token in both", c: Component{Token: token, TokenFile: file}, peers: remote, wantID: "build-1"},
		{name: "different tokens", c: Component{Token: "scr_other_" + strings.Repeat("cd", 24), TokenFile: file}, peers: remote, want: "different tokens"},
		{name: "missing file", c: Component{TokenFile: file + ".missing"}, peers: remote, want: "--runner-token-file"},
		{name: "runner id matching the token", c: Component{Token: token, ID: "build-1"}, peers: remote, wantID: "build-1"},
		{name: "runner id differing from the token", c: Component{Token: token, ID: "build-2"}, peers: remote, want: "differs from the name its token was registered as (build-1)"},
		{name: "not a runner token", c: Component{Token: "sci_" + strings.Repeat("ab", 24)}, peers: remote, want: "not a runner token"},
		{name: "no token", peers: remote, want: "no runner token: register the runner"},
		{name: "the internal token", c: Component{Token: token}, internal: "secret", peers: remote, want: "must not hold the deployment's internal token"},
		{name: "the internal token without a runner token", internal: "secret", peers: remote, want: "must not hold the deployment's internal token"},
		{name: "no token beside the scheduler", c: Component{ID: "local"}, peers: map[string]string{}, withScheduler: true, wantID: "local"},
		{name: "no token beside the scheduler, bad id", c: Component{ID: "Local_1"}, peers: map[string]string{}, withScheduler: true, want: "--runner-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := node.Config{Peers: tt.peers, InternalToken: tt.internal}
			c := tt.c
			comps := []node.Component{&c}
			if tt.withScheduler {
				comps = append(comps, named("scheduler"), named("log"))
			}
			err := node.Validate(&cfg, comps...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if c.ID != tt.wantID || (c.Token != token && !tt.withScheduler) {
					t.Fatalf("runner %q with token %q, want %q", c.ID, c.Token, tt.wantID)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), strings.Repeat("cd", 24)) {
				t.Fatalf("the error quotes a token: %v", err)
			}
		})
	}
}

// named is a component that only has a name.
type named string

func (n named) Name() string                        { return string(n) }
func (named) Init(context.Context, *node.Env) error { return nil }

// TestJobsFlag: --jobs and SIMPLECI_RUNNER_JOBS set how many jobs run at once (default
// the number of CPUs); anything but a number from 1 up is refused, saying what it wants.
func TestJobsFlag(t *testing.T) {
	parse := func(env string, args ...string) (*Component, error, []string) {
		t.Setenv("SIMPLECI_RUNNER_JOBS", env)
		c := &Component{Token: "scr_t_" + strings.Repeat("ab", 24)}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.JobsFlag(fs)
		err := fs.Parse(args)
		return c, err, c.Validate(&node.Config{Peers: map[string]string{"scheduler": "127.0.0.1:1", "log": "127.0.0.1:2"}})
	}
	if c, err, problems := parse(""); err != nil || len(problems) > 0 || c.jobs() != runtime.NumCPU() {
		t.Fatalf("default: %d jobs (%v %v), want the number of CPUs, %d", c.jobs(), err, problems, runtime.NumCPU())
	}
	if c, err, _ := parse("", "--jobs", "3"); err != nil || c.jobs() != 3 {
		t.Fatalf("--jobs 3: %d jobs (%v)", c.jobs(), err)
	}
	if c, err, problems := parse("2"); err != nil || len(problems) > 0 || c.jobs() != 2 {
		t.Fatalf("SIMPLECI_RUNNER_JOBS=2: %d jobs (%v %v)", c.jobs(), err, problems)
	}
	if c, err, _ := parse("2", "--jobs", "5"); err != nil || c.jobs() != 5 {
		t.Fatalf("the flag over the environment: %d jobs (%v)", c.jobs(), err)
	}
	for _, v := range []string{"0", "-1", "many"} {
		if _, err, _ := parse("", "--jobs", v); err == nil || !strings.Contains(err.Error(), "at least 1") {
			t.Errorf("--jobs %s: %v, want refused", v, err)
		}
		if _, _, problems := parse(v); !strings.Contains(strings.Join(problems, "\n"), `SIMPLECI_RUNNER_JOBS="`+v+`": want a number of jobs at once, at least 1`) {
			t.Errorf("SIMPLECI_RUNNER_JOBS=%s: %v, want refused", v, problems)
		}
	}
}
