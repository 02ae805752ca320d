package service

import (
	"flag"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/platform/node"
)

// TestRefusing: a runner that lacks layers refuses jobs, naming them, unless weak
// isolation is allowed; one that has them all takes jobs either way.
func TestRefusing(t *testing.T) {
	missing := []string{"job user (the runner is not root)", "network namespace (...)"}
	r := &Runner{cfg: Config{}, missing: missing}
	err := r.Refusing()
	if err == nil || !strings.Contains(err.Error(), "job user (the runner is not root); network namespace") ||
		!strings.Contains(err.Error(), "--allow-weak-isolation") {
		t.Fatalf("Refusing() = %v, want the missing layers and the flag", err)
	}
	r.cfg.AllowWeakIsolation = true
	if err := r.Refusing(); err != nil {
		t.Fatalf("with --allow-weak-isolation: %v", err)
	}
	if w := WeakWarning(missing); !strings.HasPrefix(w, "WARNING: weak isolation") || !strings.Contains(w, missing[0]) {
		t.Fatalf("warning %q", w)
	}
	if err := (&Runner{}).Refusing(); err != nil {
		t.Fatalf("nothing missing: %v", err)
	}
}

// TestIsolationFlags: the flags, their environment variables and the errors for bad
// ranges.
func TestIsolationFlags(t *testing.T) {
	parse := func(env map[string]string, devDefault bool, args ...string) (*Component, []string) {
		for k, v := range env {
			t.Setenv(k, v)
		}
		c := &Component{Token: "scr_t_" + strings.Repeat("ab", 24)} // a runner's own token (component_test.go)
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.IsolationFlags(fs, devDefault)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return c, c.Validate(&node.Config{Peers: map[string]string{"scheduler": "127.0.0.1:1", "log": "127.0.0.1:2"}})
	}
	c, problems := parse(nil, false, "--deny-network", "203.0.113.0/24", "--deny-network", "198.51.100.0/24", "--allow-job-network", "10.5.0.0/16")
	if c.AllowWeakIsolation || len(c.deny) != 2 || len(c.allow) != 1 || len(problems) > 0 {
		t.Fatalf("weak %v deny %v allow %v problems %v", c.AllowWeakIsolation, c.deny, c.allow, problems)
	}
	if c, _ := parse(nil, true); !c.AllowWeakIsolation {
		t.Fatal("dev's default allows weak isolation")
	}
	if c, _ := parse(nil, true, "--allow-weak-isolation=false"); c.AllowWeakIsolation {
		t.Fatal("--allow-weak-isolation=false")
	}
	c, _ = parse(map[string]string{"SIMPLECI_ALLOW_WEAK_ISOLATION": "true", "SIMPLECI_DENY_NETWORK": "203.0.113.0/24, 198.51.100.0/24"}, false)
	if !c.AllowWeakIsolation || len(c.deny) != 2 {
		t.Fatalf("from the environment: weak %v deny %v", c.AllowWeakIsolation, c.deny)
	}
	_, problems = parse(map[string]string{"SIMPLECI_ALLOW_WEAK_ISOLATION": "maybe", "SIMPLECI_DENY_NETWORK": ""}, false,
		"--deny-network", "10.0.0.1", "--allow-job-network", "8.8.8.0/24")
	want := []string{`SIMPLECI_ALLOW_WEAK_ISOLATION="maybe"`, `--deny-network: network "10.0.0.1": not a CIDR range`,
		`--allow-job-network: network "8.8.8.0/24": only parts of the private ranges`}
	for _, w := range want {
		if !strings.Contains(strings.Join(problems, "\n"), w) {
			t.Errorf("problems %q lack %q", problems, w)
		}
	}
}
