package e2e_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The job's network (issue 9): every job has a network namespace of its own; with the
// network on, its way out is a per-job slirp4netns, and the host (its loopback and its
// own addresses), link-local, private and the operator's ranges are unreachable. A
// runner without the layers refuses jobs unless --allow-weak-isolation.

// waitStepRunning waits until step i of the run (of steps in all) runs.
func (a *api) waitStepRunning(id string, i, steps int) {
	a.t.Helper()
	eventually(a.t, 60*time.Second, fmt.Sprintf("step %d of run %s to run", i, id), func() bool {
		code, b := a.do("GET", "/api/v1/runs/"+id, nil, nil)
		var r run
		return code == http.StatusOK && json.Unmarshal(b, &r) == nil && len(r.Steps) == steps && r.Steps[i].Status == "running"
	})
}

// hostListener serves "host-service" on addr at a free port until the test ends.
func hostListener(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("host-service\n"))
			c.Close()
		}
	}()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// hostAddress is the host's first non-loopback IPv4 address.
func hostAddress(t *testing.T) string {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	t.Skip("the host has no non-loopback IPv4 address")
	return ""
}

// slirpOf lists the slirp4netns processes whose parent is pid.
func slirpOf(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(slirp4netns") {
			continue
		}
		if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// TestNetworkDev: `simpleci dev` as root with slirp4netns. A step with the network on
// cannot reach a server on the host's 127.0.0.1, one on the host's own address, the
// metadata address or a range given with --deny-network, while it has tap0 and a
// default route (the way out); with the network off it has loopback only; the
// slirp4netns of a run is there while it runs and gone after.
func TestNetworkDev(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		t.Skip("slirp4netns (Debian package slirp4netns) is not installed; deploy/local/test.sh installs it")
	}
	own := hostAddress(t)
	loopPort, ownPort := hostListener(t, "127.0.0.1"), hostListener(t, own)
	a, dev := startDevWith(t, nil, t.TempDir(), nil, "--tier", "standard:timeout=60s", "--deny-network", "198.51.100.0/24")
	// try HOST PORT prints "HOST: reached: ..." or "HOST: refused".
	try := `try() { if out=$(timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2 && head -n1 <&3" 2>&1); then echo "$1: reached: $out"; else echo "$1: refused: $out"; fi; }; `
	hold := uniqueSleep()
	repo, shas := gitRepo(t, map[string]string{
		"net": pipelineJSON(
			map[string]any{"name": "probe", "run": try + "try 127.0.0.1 " + loopPort + "; try " + own + " " + ownPort +
				"; try 169.254.169.254 80; try 198.51.100.7 80; try 10.0.2.2 " + loopPort + "; cat /proc/net/route /proc/net/dev"},
			map[string]any{"name": "hold", "run": hold + " & wait"}),
	})
	repo2, shas2 := gitRepo(t, map[string]string{
		"net": pipelineJSON(map[string]any{"name": "probe", "run": "cat /proc/net/route /proc/net/dev"}),
	})
	var on, off project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "net-on", "provider": "local", "repository": repo,
		"events": []string{"push"}, "network": "on"}, http.StatusOK, &on)
	a.json("POST", "/api/v1/projects", map[string]any{"name": "net-off", "provider": "local", "repository": repo2,
		"events": []string{"push"}, "network": "off"}, http.StatusOK, &off)

	t.Run("network on: the host and denied ranges are unreachable, the way out is there", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		id := a.push(on, "net", shas["net"])
		// While the run holds (its second step runs), its slirp4netns runs under the runner.
		a.waitStepRunning(id, 1, 2)
		if n := len(slirpOf(dev.cmd.Process.Pid)); n != 1 {
			t.Errorf("%d slirp4netns processes under the runner while the run runs, want 1", n)
		}
		a.json("POST", "/api/v1/runs/"+id+":cancel", map[string]any{}, http.StatusOK, nil)
		r := a.waitRun(id, 60*time.Second)
		text, chunks := a.logOf(r.ID)
		line := checkIsolation(t, r, chunks)
		t.Logf("isolation: %s\nwhat the step saw:\n%s", line, text)
		if !strings.Contains(line, "net=slirp4netns+filter") || !strings.Contains(line, "namespaces=user,mount,pid,net,") {
			t.Errorf("isolation %q: want a network namespace with slirp4netns", line)
		}
		for _, host := range []string{"127.0.0.1", own, "169.254.169.254", "198.51.100.7", "10.0.2.2"} {
			if !strings.Contains(text, host+": refused") {
				t.Errorf("the step was not refused %s: %s", host, text)
			}
		}
		if strings.Contains(text, "host-service") {
			t.Errorf("a step reached a host service: %s", text)
		}
		if !strings.Contains(text, own+": refused: bash: connect: Permission denied") {
			t.Errorf("the host's own address should be refused by the job's prohibit route: %s", text)
		}
		if !regexp.MustCompile(`(?m)^tap0\s+00000000\s+0202000A\s`).MatchString(text) || !strings.Contains(text, "tap0:") {
			t.Errorf("the step has no tap0 with a default route via 10.0.2.2: %s", text)
		}
		eventually(t, 10*time.Second, "no slirp4netns left", func() bool { return len(slirpOf(dev.cmd.Process.Pid)) == 0 })
	})

	t.Run("network off: loopback only", func(t *testing.T) {
		a := &api{t: t, base: a.base, token: a.token}
		r := a.waitRun(a.push(off, "net", shas2["net"]), 60*time.Second)
		if r.Status != "succeeded" {
			t.Fatalf("run: %s (%s)", r.Status, r.Reason)
		}
		text, chunks := a.logOf(r.ID)
		line := checkIsolation(t, r, chunks)
		if !strings.Contains(line, "net=loopback") {
			t.Errorf("isolation %q: want net=loopback", line)
		}
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			f := strings.Fields(l)
			if len(f) > 0 && strings.HasSuffix(f[0], ":") && f[0] != "lo:" && !strings.HasPrefix(l, "Inter-") {
				t.Errorf("the step has an interface besides lo: %q\n%s", l, text)
			}
		}
		if strings.Contains(text, "tap0") || len(strings.Split(strings.TrimSpace(text), "\n")) != 4 {
			t.Errorf("want no route and lo only: %s", text)
		}
		if n := len(slirpOf(dev.cmd.Process.Pid)); n != 0 {
			t.Errorf("%d slirp4netns for a job without network", n)
		}
	})
}

// TestNetworkRefusedWithoutLayers: `simpleci dev` as nobody with
// --allow-weak-isolation=false takes no job: /readyz answers 503 naming the missing
// layers, the log says so, and a run stays queued.
func TestNetworkRefusedWithoutLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (to start the server as nobody)")
	}
	const nobody = 65534
	data, err := os.MkdirTemp("", "simpleci-strict-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	a, p := startDevUnready(t, &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}, data, []string{"HOME=" + data},
		"--allow-weak-isolation=false")
	var body []byte
	eventually(t, 60*time.Second, "/readyz to name the isolation", func() bool {
		var code int
		code, body = a.do("GET", "/readyz", nil, nil)
		return code == http.StatusServiceUnavailable && strings.Contains(string(body), "isolation")
	})
	var ready struct {
		Failed map[string]string `json:"failed"`
	}
	if err := json.Unmarshal(body, &ready); err != nil {
		t.Fatalf("/readyz %s: %v", body, err)
	}
	why := ready.Failed["isolation"]
	for _, w := range []string{"isolation layers missing", "job user (the runner is not root)", "cgroup", "network namespace", "--allow-weak-isolation"} {
		if !strings.Contains(why, w) {
			t.Errorf("/readyz isolation %q lacks %q", why, w)
		}
	}
	if len(ready.Failed) != 1 {
		t.Errorf("/readyz fails more than the isolation: %v", ready.Failed)
	}
	var r run
	a.json("POST", "/api/v1/projects/demo/runs", map[string]string{"ref": "main"}, http.StatusOK, &r)
	time.Sleep(5 * time.Second)
	a.json("GET", "/api/v1/runs/"+r.ID, nil, http.StatusOK, &r)
	if r.Status != "queued" {
		t.Errorf("a run on a runner that refuses jobs: %s (%s), want queued", r.Status, r.Reason)
	}
	b, _ := os.ReadFile(p.log)
	if !strings.Contains(string(b), "runner refuses jobs: isolation layers missing") {
		t.Errorf("the server's log does not say the runner refuses jobs:\n%s", b)
	}
}
