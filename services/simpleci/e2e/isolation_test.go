package e2e_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The isolation tests (issue 5, "Must show"): steps that attack the runner, the host or
// other jobs, through the real services. docs/security.md says which layer stops what.

// pipelineJSON is a pipeline file with these steps.
func pipelineJSON(steps ...map[string]any) string {
	b, err := json.Marshal(map[string]any{"steps": steps})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// logOf waits until the run's log is complete and returns its text without the runner's
// system lines, and the chunks.
func (a *api) logOf(id string) (string, []chunk) {
	a.t.Helper()
	chunks := a.waitLogs(id)
	var b strings.Builder
	for _, c := range chunks {
		if c.Stream != "system" {
			b.WriteString(c.Text)
		}
	}
	return b.String(), chunks
}

type runEvent struct {
	Type    string         `json:"type"`
	Time    string         `json:"time"`
	Payload map[string]any `json:"payload"`
}

// events returns the run's recorded events, their type without the package.
func (a *api) events(id string) []runEvent {
	a.t.Helper()
	var out struct {
		Events []runEvent `json:"events"`
	}
	a.json("GET", "/api/v1/runs/"+id+"/events", nil, http.StatusOK, &out)
	for i := range out.Events {
		out.Events[i].Type = strings.TrimPrefix(out.Events[i].Type, "simpleci.events.v1.")
	}
	return out.Events
}

// runnerOf returns the runner that started the run's current attempt.
func (a *api) runnerOf(id string) string {
	a.t.Helper()
	runner := ""
	for _, e := range a.events(id) {
		switch e.Type {
		case "RunStarted":
			runner, _ = e.Payload["runnerId"].(string)
		case "RunRequeued":
			runner = ""
		}
	}
	return runner
}

// checkIsolation checks that the run detail names the active layers and that the run's
// log starts with the same line, and returns it.
func checkIsolation(t *testing.T, r run, chunks []chunk) string {
	t.Helper()
	if len(chunks) == 0 || chunks[0].Stream != "system" || chunks[0].Sequence != "1" {
		t.Fatalf("the log does not start with a system line: %+v", chunks)
	}
	line := strings.TrimSuffix(chunks[0].Text, "\n")
	// A runner that allows weak isolation puts a warning line first.
	if strings.HasPrefix(line, "WARNING: weak isolation") {
		_, line, _ = strings.Cut(line, "\n")
	}
	if r.Isolation != line {
		t.Fatalf("run detail isolation %q, first log line %q: want the same", r.Isolation, line)
	}
	if !strings.HasPrefix(line, "isolation: ") {
		t.Fatalf("isolation %q", line)
	}
	return line
}

// wantStrong checks that an isolation line of a root runner names every layer this
// machine has (docs/security.md, "What these machines provide").
func wantStrong(t *testing.T, line string) {
	t.Helper()
	want := []string{"cgroup=v1", "memory,pids,cpu", "user=uid 64", "no_new_privs", "caps=none", "kill=cgroup"}
	if _, err := exec.LookPath("bwrap"); err == nil {
		want = append(want, "namespaces=user,mount,pid", "fs=bubblewrap", "pid namespace")
	}
	if strings.Contains(line, "weak") {
		t.Errorf("a root runner reports weak isolation: %q", line)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("isolation %q does not name %q", line, w)
		}
	}
}

// sinceRestart is p's log since its last restart by the test.
func sinceRestart(p *proc) string {
	b, _ := os.ReadFile(p.log)
	text := string(b)
	if i := strings.LastIndex(text, "---- restarted by the test"); i >= 0 {
		return text[i:]
	}
	return ""
}

// TestIsolationDev drives `simpleci dev` (its runner is root: every layer) with a small
// standard tier: a fork bomb and a memory hog hit their limits and the next run still
// runs; processes that left the job's process group do not outlive the run; a step
// cannot read the runner's environment, its /proc entry, its HOME or its data.
func TestIsolationDev(t *testing.T) {
	secret := fmt.Sprintf("runner-secret-%d", rand.Int64())
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "credentials"), []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	a, dev := startDevWith(t, nil, data, []string{"SIMPLECI_TEST_RUNNER_SECRET=" + secret, "HOME=" + home},
		"--tier", "standard:timeout=30s,memory=64MiB,pids=64")
	devPid := dev.cmd.Process.Pid
	adminToken := a.token
	// What the steps go after is there, for the runner's user.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", devPid)); err != nil || !strings.Contains(string(b), secret) {
		t.Fatalf("the runner's environment lacks the secret (%v)", err)
	}

	setsidSleep, daemonSleep, orphanSleep := uniqueSleep(), uniqueSleep(), uniqueSleep()
	// The second step lists the job's processes; the brackets keep its own command line
	// from matching.
	bracket := func(s string) string { return "slee[p]" + strings.TrimPrefix(s, "sleep") }
	repo, shas := gitRepo(t, map[string]string{
		"ok":   pipelineJSON(map[string]any{"name": "ok", "run": "echo fine"}),
		"bomb": pipelineJSON(map[string]any{"name": "fork bomb", "run": "while :; do sleep 300 & done"}),
		"hog":  pipelineJSON(map[string]any{"name": "hog", "run": "dd if=/dev/zero of=/dev/null bs=256M count=1"}),
		"escape": pipelineJSON(
			map[string]any{"name": "escape", "run": []string{
				"sh -c 'setsid " + setsidSleep + " &'",
				"sh -c '(setsid " + daemonSleep + " >/dev/null 2>&1 &) &'", // a daemon: double fork and setsid
				"sh -c '(" + orphanSleep + " >/dev/null 2>&1 &) &'",        // a double fork
			}},
			map[string]any{"name": "still there", "run": "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -o -e '" +
				bracket(setsidSleep) + "' -e '" + bracket(daemonSleep) + "' -e '" + bracket(orphanSleep) + "' | sort"}),
		"snoop": pipelineJSON(
			map[string]any{"name": "env", "run": "env; printenv SIMPLECI_TEST_RUNNER_SECRET || echo 'env: denied'"},
			map[string]any{"name": "environ", "run": fmt.Sprintf("cat /proc/%d/environ || echo 'environ: denied'", devPid)},
			map[string]any{"name": "home", "run": "cat " + filepath.Join(home, "credentials") + " || echo 'home: denied'"},
			map[string]any{"name": "data", "run": "cat " + filepath.Join(data, "admin-token") + " || echo 'data: denied'"}),
	})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "isolation", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &p)
	runOK := func(t *testing.T, a *api) {
		t.Helper()
		if r := a.waitRun(a.push(p, "ok", shas["ok"]), 60*time.Second); r.Status != "succeeded" {
			t.Fatalf("the next run: %s (%s), want succeeded: the runner should keep working", r.Status, r.Reason)
		}
	}

	t.Run("the run detail and the first log line name the active layers", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "ok", shas["ok"]), 60*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run: %s (%s)", r.Status, r.Reason)
		}
		text, chunks := a.logOf(r.ID)
		line := checkIsolation(t, r, chunks)
		t.Logf("dev mode: %s", line)
		wantStrong(t, line)
		if text != "fine\n" {
			t.Errorf("log %q", text)
		}
	})

	t.Run("a fork bomb fails on the pids limit and the next run runs", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		start := time.Now()
		r := a.waitRun(a.push(p, "bomb", shas["bomb"]), 60*time.Second)
		t.Logf("fork bomb run: %s in %s: %s", r.Status, time.Since(start).Round(time.Millisecond), r.Reason)
		if r.Status != "failed" || len(r.Steps) != 1 || r.Steps[0].Status != "failed" {
			t.Fatalf("run: %s (%s) steps %+v, want failed", r.Status, r.Reason, r.Steps)
		}
		if !strings.Contains(r.Steps[0].Reason, "pids limit (64) reached") || !strings.Contains(r.Reason, "pids limit") {
			t.Fatalf("step reason %q, run reason %q: want them to name the pids limit", r.Steps[0].Reason, r.Reason)
		}
		runOK(t, a)
	})

	t.Run("a step allocating more than the tier's memory is killed and the runner lives", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "hog", shas["hog"]), 60*time.Second)
		t.Logf("memory hog run: %s: %s", r.Status, r.Reason)
		if r.Status != "failed" || len(r.Steps) != 1 || r.Steps[0].Status != "failed" {
			t.Fatalf("run: %s (%s) steps %+v, want failed", r.Status, r.Reason, r.Steps)
		}
		if !strings.Contains(r.Steps[0].Reason, "memory limit (64 MiB) exceeded") || r.Steps[0].ExitCode != 137 {
			t.Fatalf("step: exit code %d, reason %q: want 137 and the memory limit", r.Steps[0].ExitCode, r.Steps[0].Reason)
		}
		if syscall.Kill(devPid, 0) != nil {
			t.Fatal("the runner died")
		}
		runOK(t, a)
	})

	t.Run("processes that left the job's process group do not outlive the run", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "escape", shas["escape"]), 60*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run: %s (%s) steps %+v", r.Status, r.Reason, r.Steps)
		}
		// They ran on in the background until the job's end...
		text, _ := a.logOf(r.ID)
		for _, s := range []string{setsidSleep, daemonSleep, orphanSleep} {
			if !strings.Contains(text, s+"\n") {
				t.Errorf("%q was not running in the job's second step: log %q", s, text)
			}
		}
		// ...and none is left once the run has ended.
		for _, s := range []string{setsidSleep, daemonSleep, orphanSleep} {
			if left := processesWith(s); len(left) > 0 {
				t.Errorf("processes of the job survived the run: %q", left)
			}
		}
	})

	t.Run("a step cannot read the runner's environment, /proc entry, HOME or data", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(p, "snoop", shas["snoop"]), 60*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run: %s (%s) steps %+v", r.Status, r.Reason, r.Steps)
		}
		text, chunks := a.logOf(r.ID)
		var all strings.Builder
		for _, c := range chunks {
			all.WriteString(c.Text)
		}
		for _, leak := range []string{secret, adminToken} {
			if strings.Contains(all.String(), leak) {
				t.Fatalf("the log shows a secret of the runner: %q", all.String())
			}
		}
		for _, denied := range []string{"env: denied", "environ: denied", "home: denied", "data: denied"} {
			if !strings.Contains(text, denied+"\n") {
				t.Errorf("the log lacks %q: %q", denied, text)
			}
		}
		t.Logf("what the steps saw:\n%s", text)
	})
}

// TestIsolationWeakDev: a runner that is not root (here `simpleci dev` as nobody) runs
// its jobs as its own user; the run detail and the log say that the isolation is weak,
// and the jobs still run.
func TestIsolationWeakDev(t *testing.T) {
	const nobody = 65534
	data, err := os.MkdirTemp("", "simpleci-weak-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	a, _ := startDevWith(t, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, data, []string{"HOME=" + data})
	var r run
	a.json("POST", "/api/v1/projects/demo/runs", map[string]string{"ref": "main"}, http.StatusOK, &r)
	r = a.waitRun(r.ID, 60*time.Second)
	if r.Status != "succeeded" {
		t.Fatalf("demo run on a runner that is not root: %s (%s) %+v", r.Status, r.Reason, r.Steps)
	}
	text, chunks := a.logOf(r.ID)
	line := checkIsolation(t, r, chunks)
	t.Logf("a runner that is not root: %s", line)
	if !strings.HasPrefix(line, "isolation: weak (") || !strings.Contains(line, "runs as the runner's user") ||
		!strings.Contains(line, fmt.Sprintf("user=runner (uid %d)", nobody)) {
		t.Fatalf("isolation %q: want weak, as the runner's user", line)
	}
	// `simpleci dev` allows weak isolation: the log's first line warns and names what
	// is missing (the demo has the network on: the host's, without a root runner).
	first := chunks[0].Text
	for _, w := range []string{"WARNING: weak isolation", "job user (the runner is not root)", "cgroup", "network namespace (the job has the host's network"} {
		if !strings.Contains(first, w) {
			t.Errorf("the log's first lines %q lack %q", first, w)
		}
	}
	if !strings.Contains(text, "build ok") {
		t.Fatalf("demo log %q", text)
	}
}

// TestIsolationServices runs the services as separate processes (PostgreSQL, Kafka) with
// two runners: a job cannot read another job's workspace or its runner's secrets; a
// runner killed with SIGKILL mid-step gets its run retried on the other runner within
// twice the lease; with retries off, the run fails with "runner lost".
func TestIsolationServices(t *testing.T) {
	const lease = 4 * time.Second
	c := startClusterWith(t, 2, "--tier", "standard:timeout=60s", "--lease", lease.String())
	a := c.api
	hold := uniqueSleep()
	work := fmt.Sprintf("sleep 3.%06d", rand.IntN(1000000)) // three seconds, findable
	secret := fmt.Sprintf("workspace-secret-%d", rand.Int64())
	repo, shas := gitRepo(t, map[string]string{
		"hold": pipelineJSON(map[string]any{"name": "hold", "run": []string{
			"echo " + secret + " > secret.txt", "echo workspace=$SIMPLECI_WORKSPACE", hold}}),
		"work": pipelineJSON(map[string]any{"name": "work", "run": []string{"echo working", work, "echo done"}}),
	})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "isolation", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &p)
	// The runner's own token is the credential its host holds (it has no internal token).
	runnerToken := ""
	for _, kv := range c.procs["runner-1"].env {
		if v, ok := strings.CutPrefix(kv, "SIMPLECI_RUNNER_TOKEN="); ok {
			runnerToken = v
		}
	}
	if runnerToken == "" {
		t.Fatal("no runner token in the runner's environment")
	}
	// running waits until the run's step runs and its process is up.
	running := func(t *testing.T, a *api, id, step, cmdline string) {
		t.Helper()
		eventually(t, 60*time.Second, "step "+step+" to run", func() bool {
			code, b := a.do("GET", "/api/v1/runs/"+id, nil, nil)
			var r run
			json.Unmarshal(b, &r)
			return code == http.StatusOK && len(r.Steps) > 0 && r.Steps[0].Status == "running" &&
				countExactly(processesWith(cmdline), cmdline) == 1
		})
	}

	t.Run("a job cannot read another job's workspace or its runner's secrets", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		holder := a.push(p, "hold", shas["hold"])
		running(t, a, holder, "hold", hold)
		var ws string
		var out struct {
			Chunks []chunk `json:"chunks"`
		}
		a.json("GET", "/api/v1/runs/"+holder+"/logs", nil, http.StatusOK, &out)
		for _, c := range out.Chunks {
			for _, l := range strings.Split(c.Text, "\n") {
				if v, ok := strings.CutPrefix(l, "workspace="); ok {
					ws = v
				}
			}
		}
		if ws == "" {
			t.Fatalf("the holding job did not print its workspace: %+v", out.Chunks)
		}
		if b, err := os.ReadFile(filepath.Join(ws, "secret.txt")); err != nil || !strings.Contains(string(b), secret) {
			t.Fatalf("the holding job's secret file is not at %s (%v)", ws, err)
		}
		holderRunner := a.runnerOf(holder)
		runnerPid := c.procs[holderRunner].cmd.Process.Pid

		snoop, snoopShas := gitRepo(t, map[string]string{"snoop": pipelineJSON(
			map[string]any{"name": "workspace", "run": []string{
				"cat " + filepath.Join(ws, "secret.txt") + " || echo 'workspace: denied'",
				"ls " + filepath.Dir(ws) + " || echo 'job directory: denied'"}},
			map[string]any{"name": "runner", "run": []string{
				"printenv SIMPLECI_RUNNER_TOKEN || echo 'env: denied'",
				fmt.Sprintf("cat /proc/%d/environ || echo 'environ: denied'", runnerPid)}})})
		var q project
		a.json("POST", "/api/v1/projects", map[string]any{"name": "snoop", "provider": "local", "repository": snoop,
			"events": []string{"push"}}, http.StatusOK, &q)
		id := a.push(q, "snoop", snoopShas["snoop"])
		r := a.waitRun(id, 60*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run: %s (%s) %+v", r.Status, r.Reason, r.Steps)
		}
		// The holding job still runs: the two ran at once, on two runners or side by
		// side on one (a runner runs --jobs N at once, the default the number of CPUs).
		other := a.runnerOf(id)
		if other == "" {
			t.Fatal("the snooping run names no runner")
		}
		t.Logf("the holding job ran on %s, the snooping one on %s", holderRunner, other)
		text, chunks := a.logOf(id)
		line := checkIsolation(t, r, chunks)
		t.Logf("serve mode: %s", line)
		wantStrong(t, line)
		var all strings.Builder
		for _, c := range chunks {
			all.WriteString(c.Text)
		}
		for _, leak := range []string{secret, runnerToken} {
			if strings.Contains(all.String(), leak) {
				t.Fatalf("the log shows a secret: %q", all.String())
			}
		}
		for _, denied := range []string{"workspace: denied", "job directory: denied", "env: denied", "environ: denied"} {
			if !strings.Contains(text, denied+"\n") {
				t.Errorf("the log lacks %q: %q", denied, text)
			}
		}
		t.Logf("what the steps saw:\n%s", text)

		a.json("POST", "/api/v1/runs/"+holder+":cancel", map[string]any{}, http.StatusOK, nil)
		if r := a.waitRun(holder, 30*time.Second); r.Status != "cancelled" {
			t.Fatalf("the holding run: %s (%s), want cancelled", r.Status, r.Reason)
		}
		if left := processesWith(hold); len(left) > 0 {
			t.Fatalf("processes of the cancelled job survived it: %q", left)
		}
	})

	t.Run("a runner killed mid-step: the run is retried on the other runner and succeeds", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		id := a.push(p, "work", shas["work"])
		running(t, a, id, "work", work)
		first := a.runnerOf(id)
		killed := time.Now()
		c.procs[first].kill()
		// bubblewrap dies with the runner, and the job's PID namespace with it.
		eventually(t, 2*time.Second, "the killed runner's job to die with it", func() bool { return len(processesWith(work)) == 0 })
		r := a.waitRun(id, 60*time.Second)
		if r.Status != "succeeded" || r.Attempt != 2 {
			t.Fatalf("run: %s (%s), attempt %d: want succeeded on attempt 2", r.Status, r.Reason, r.Attempt)
		}
		var types []string
		var restarted time.Time
		for _, e := range a.events(id) {
			types = append(types, e.Type)
			if e.Type == "RunStarted" {
				restarted, _ = time.Parse(time.RFC3339Nano, e.Time)
			}
		}
		if got := strings.Join(types, " "); !strings.Contains(got, "StepStarted RunRequeued RunStarted RunIsolation StepStarted StepFinished RunFinished") {
			t.Fatalf("events %s: want the run requeued and started again", got)
		}
		if second := a.runnerOf(id); second == first || second == "" {
			t.Fatalf("attempt 2 ran on %q, the killed runner was %q", second, first)
		}
		took := restarted.Sub(killed)
		t.Logf("SIGKILL of %s to the run's start on the other runner: %s (lease %s)", first, took.Round(time.Millisecond), lease)
		if took > 2*lease {
			t.Errorf("the run was retried %s after its runner died, want within twice the lease (%s)", took, 2*lease)
		}
		if _, chunks := a.logOf(id); len(chunks) == 0 || chunks[0].Stream != "system" {
			t.Errorf("attempt 2's log does not start with its isolation line: %+v", chunks)
		}
		// Started again, the killed runner removes what its predecessor left.
		c.procs[first].restart(t)
		eventually(t, 30*time.Second, "the restarted runner to remove the stale workspace", func() bool {
			return strings.Contains(sinceRestart(c.procs[first]), "removed a workspace left by an earlier runner")
		})
	})

	t.Run("with --lost-run-retries 0 a killed runner's run fails: runner lost", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		sched := c.procs["scheduler"]
		sched.args = append(sched.args, "--lost-run-retries", "0")
		sched.restart(t)
		id := a.push(p, "work", shas["work"])
		running(t, a, id, "work", work)
		runner := a.runnerOf(id)
		killed := time.Now()
		c.procs[runner].kill()
		r := a.waitRun(id, 60*time.Second)
		took := time.Since(killed)
		if r.Status != "failed" || !strings.Contains(r.Reason, "runner lost") {
			t.Fatalf("run: %s (%s), want failed: runner lost", r.Status, r.Reason)
		}
		t.Logf("SIGKILL of %s to the run failed: about %s (lease %s): %s", runner, took.Round(time.Millisecond), lease, r.Reason)
		if took > 2*lease {
			t.Errorf("the run ended %s after its runner died, want within twice the lease (%s)", took, 2*lease)
		}
		for _, e := range a.events(id) {
			if e.Type == "RunRequeued" {
				t.Fatalf("the run was requeued with retries off")
			}
		}
		// Started again, it cleans up after itself (workspace, job cgroup, sandbox state).
		c.procs[runner].restart(t)
		eventually(t, 30*time.Second, "the restarted runner to remove the stale workspace", func() bool {
			return strings.Contains(sinceRestart(c.procs[runner]), "removed a workspace left by an earlier runner")
		})
	})
}
