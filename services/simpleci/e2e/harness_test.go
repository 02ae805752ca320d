package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
)

// bin is the simpleci binary built once for all tests.
var bin string

// reposRoot holds the tests' repositories (gitRepo); every process started is told it is
// the repository root (SIMPLECI_LOCAL_REPOS), as an operator would with --local-repos.
var reposRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "simpleci-e2e-bin")
	if err != nil {
		panic(err)
	}
	// Others may run it: a test starts it as an unprivileged user (isolation_test.go).
	os.Chmod(dir, 0o755)
	bin = filepath.Join(dir, "simpleci")
	if reposRoot, err = os.MkdirTemp("", "simpleci-e2e-repos"); err != nil {
		panic(err)
	}
	os.Chmod(reposRoot, 0o755)
	out, err := exec.Command("go", "build", "-o", bin, "github.com/simpleci/simpleci/services/simpleci/cmd/simpleci").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build simpleci: %v\n%s", err, out)
		os.Exit(1)
	}
	// The processes of this test run, and the test's own Kafka clients, use a Kafka namespace
	// of their own (topic and group prefix), so that test runs sharing the broker never take
	// each other's messages; its topics are deleted at the end.
	if os.Getenv("SIMPLECI_KAFKA_NAMESPACE") == "" {
		os.Setenv("SIMPLECI_KAFKA_NAMESPACE", fmt.Sprintf("e2e-%d-%d.", os.Getpid(), time.Now().UnixNano()))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(reposRoot)
	if os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS") != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := bus.DeleteNamespace(ctx, kafkaConfig("simpleci-e2e")); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: deleting the test run's Kafka topics: %v\n", err)
		}
		cancel()
	}
	os.Exit(code)
}

// kafkaConfig is the test broker in this test run's namespace.
func kafkaConfig(clientID string) bus.KafkaConfig {
	return bus.KafkaConfig{Brokers: strings.Split(os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS"), ","),
		ClientID: clientID, Namespace: os.Getenv("SIMPLECI_KAFKA_NAMESPACE")}
}

// handedOut are the addresses freeAddr returned: the kernel may offer a port again once
// its probe listener is closed, before the process it was meant for listens on it.
var handedOut sync.Map

func freeAddr(t testing.TB) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// proc is a started simpleci process; its output goes to a file shown when the test fails.
type proc struct {
	name string
	env  []string
	args []string
	// cred, when set, runs the process as another user.
	cred *syscall.Credential
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func start(t testing.TB, name string, env []string, args ...string) *proc {
	t.Helper()
	return startAs(t, nil, name, env, args...)
}

// startAs is start as the user cred (nil: the test's own).
func startAs(t testing.TB, cred *syscall.Credential, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, env: env, args: args, cred: cred, log: filepath.Join(t.TempDir(), name+".log")}
	p.launch(t)
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("---- %s log (last lines) ----\n%s", name, strings.Join(lines, "\n"))
		}
	})
	return p
}

// launch starts the process, its output appended to its log.
func (p *proc) launch(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, p.args...)
	cmd.Env = append(append(os.Environ(), "SIMPLECI_LOCAL_REPOS="+reposRoot), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() { cmd.Wait(); f.Close(); close(done) }()
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process with SIGKILL, as a crash would (no graceful shutdown: nothing
// flushed, no consumer group left, no offsets committed), and waits until it is gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// restart starts a stopped or killed process again with the same arguments, so on the
// same ports; its output goes on in the same log, after a marker line.
func (p *proc) restart(t testing.TB) {
	t.Helper()
	p.stop()
	if f, err := os.OpenFile(p.log, os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		fmt.Fprintf(f, "---- restarted by the test at %s ----\n", time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
	p.launch(t)
}

// localServer runs deploy/local/SCRIPT ARGS (e.g. "kafka.sh", "stop") and returns its
// combined output; the scripts are idempotent and bounded by their own timeouts.
func localServer(script string, args ...string) (string, error) {
	path, err := filepath.Abs(filepath.Join("..", "..", "..", "deploy", "local", script))
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("deploy/local/%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// processesWith returns the command lines of the host's processes whose command line
// contains marker (zombies have none), as the host sees them: also the processes of a
// job inside its PID namespace.
func processesWith(marker string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	for _, e := range entries {
		if e.Name() == self || e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		if strings.Contains(cmdline, marker) {
			out = append(out, e.Name()+": "+cmdline)
		}
	}
	return out
}

// countExactly counts the command lines (as processesWith returns them) that are exactly
// cmdline.
func countExactly(procs []string, cmdline string) int {
	n := 0
	for _, p := range procs {
		if _, c, _ := strings.Cut(p, ": "); c == cmdline {
			n++
		}
	}
	return n
}

// eventually polls cond until it returns true or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// api is a REST client of one gateway.
type api struct {
	t     testing.TB
	base  string
	token string
}

func (a *api) do(method, path string, body any, hdr map[string]string) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// up reports whether GET path answers with 200, treating a refused connection as not yet.
func (a *api) up(path string) bool {
	req, _ := http.NewRequest("GET", a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (a *api) json(method, path string, body any, want int, out any) {
	a.t.Helper()
	code, b := a.do(method, path, body, nil)
	if code != want {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

type step struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	Status   string `json:"status"`
	ExitCode int    `json:"exitCode"`
	Reason   string `json:"reason"`
	Started  string `json:"startedAt"`
}

type run struct {
	ID        string `json:"id"`
	Number    string `json:"number"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	Event     string `json:"event"`
	Sha       string `json:"sha"`
	Created   string `json:"createdAt"`
	Finished  string `json:"finishedAt"`
	Steps     []step `json:"steps"`
	Attempt   int    `json:"attempt"`
	Isolation string `json:"isolation"`
	// CommitMessage is the commit's message, as the forge read it when the run was queued.
	CommitMessage string `json:"commitMessage"`
}

type chunk struct {
	Sequence string `json:"sequence"`
	Step     int    `json:"step"`
	Stream   string `json:"stream"`
	Text     string `json:"text"`
}

var final = map[string]bool{"succeeded": true, "failed": true, "cancelled": true, "timed_out": true, "errored": true}

// waitRun waits until the run has finished and returns it.
func (a *api) waitRun(id string, within time.Duration) run {
	a.t.Helper()
	var r run
	eventually(a.t, within, "run "+id+" to finish", func() bool {
		code, b := a.do("GET", "/api/v1/runs/"+id, nil, nil)
		if code == http.StatusNotFound {
			return false // the scheduler has not consumed the request yet
		}
		if code != http.StatusOK {
			a.t.Fatalf("get run: %d %s", code, b)
		}
		r = run{}
		json.Unmarshal(b, &r)
		return final[r.Status]
	})
	return r
}

// waitLogs waits until the run's log is complete and returns its chunks, read page by
// page.
func (a *api) waitLogs(id string) []chunk {
	a.t.Helper()
	var chunks []chunk
	eventually(a.t, 30*time.Second, "complete logs of run "+id, func() bool {
		var complete bool
		chunks, complete = a.logPages(id)
		return complete
	})
	return chunks
}

// logPages reads the run's stored log through every page (GET .../logs?after=) and
// reports whether it is complete.
func (a *api) logPages(id string) ([]chunk, bool) {
	a.t.Helper()
	var chunks []chunk
	after := "0"
	for {
		var out struct {
			Chunks    []chunk `json:"chunks"`
			Complete  bool    `json:"complete"`
			NextAfter string  `json:"nextAfter"`
		}
		a.json("GET", "/api/v1/runs/"+id+"/logs?after="+after, nil, http.StatusOK, &out)
		chunks = append(chunks, out.Chunks...)
		if out.NextAfter == "" || out.NextAfter == "0" {
			return chunks, out.Complete
		}
		if out.NextAfter == after {
			a.t.Fatalf("logs of %s: the page after %s came again", id, after)
		}
		after = out.NextAfter
	}
}

func stepStatuses(r run) map[string]string {
	m := map[string]string{}
	for _, s := range r.Steps {
		m[s.Name] = s.Status
	}
	return m
}

// gitRepo makes a repository whose branches each hold a pipeline file; it returns the
// repository path and each branch's head sha.
func gitRepo(t testing.TB, branches map[string]string) (string, map[string]string) {
	t.Helper()
	dir := repoDir(t)
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "README"), []byte("test\n"), 0o644)
	git("add", "-A")
	git("commit", "-q", "-m", "init")
	shas := map[string]string{}
	for name, pipeline := range branches {
		git("checkout", "-q", "-B", name, "main")
		os.MkdirAll(filepath.Join(dir, ".simpleci"), 0o755)
		os.WriteFile(filepath.Join(dir, ".simpleci", "pipeline.json"), []byte(pipeline), 0o644)
		git("add", "-A")
		git("commit", "-q", "-m", name)
		shas[name] = git("rev-parse", "HEAD")
	}
	git("checkout", "-q", "main")
	return dir, shas
}

// repoDir returns a new empty directory under the repository root, removed after the test.
func repoDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(reposRoot, "repo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// jsonInto decodes b into v and reports whether it could.
func jsonInto(b []byte, v any) bool { return json.Unmarshal(b, v) == nil }

// localTool runs deploy/local/SCRIPT, which installs a test tool into a cache outside the
// repository and prints where it is, and returns that. Under `make test` (the servers'
// addresses are set) a missing tool is installed; run alone without it, the test skips
// and says how to install it.
func localTool(t *testing.T, script, what string) string {
	t.Helper()
	path, _ := filepath.Abs("../../../deploy/local/" + script)
	args := []string{"--if-installed"}
	if os.Getenv("SIMPLECI_TEST_POSTGRES_URL") != "" {
		args = nil // make test: install it (once; it is cached outside the repository)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		t.Skipf("%s is not installed: run deploy/local/%s (make test installs it)", what, script)
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}
