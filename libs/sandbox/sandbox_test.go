package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testRoot holds the tests' workspaces: 0711, so that the job users can
// reach their workspace in it and list nothing.
var testRoot string

const helperEnv = "SIMPLECI_SANDBOX_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		staleHelper(mode)
		return
	}
	dir, err := os.MkdirTemp("", "sandbox-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testRoot = dir
	// As the engine does: orphans of the jobs come to the runner, which
	// the sandbox reaps in Kill.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, 36 /* PR_SET_CHILD_SUBREAPER */, 1, 0); e != 0 {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", e)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newWorkspace(t testing.TB) string {
	t.Helper()
	ws, err := os.MkdirTemp(testRoot, "ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ws) })
	return ws
}

// newSandbox makes a sandbox with a fresh workspace (unless opts has one),
// logs its layers and closes it at the end of the test.
func newSandbox(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	if opts.Workspace == "" {
		opts.Workspace = newWorkspace(t)
	}
	s, err := New(strings.ReplaceAll(t.Name(), "/", "_"), opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Logf("active layers: %s", s.Layers())
	return s
}

func jobEnv(s *Sandbox, extra ...string) []string {
	return append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + s.Home(), "TMPDIR=" + s.TempDir()}, extra...)
}

// run runs script with sh -e -c in the sandbox and returns its output.
func run(t testing.TB, s *Sandbox, script string, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd, err := s.Command(ctx, "", jobEnv(s, env...), "/bin/sh", "-e", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := s.Start(cmd); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	return out.String(), err
}

// modes are the configurations the isolation tests run in: with
// bubblewrap when installed, and without.
func modes(t *testing.T, f func(t *testing.T, opts Options)) {
	t.Run("bubblewrap", func(t *testing.T) {
		if _, err := findTools(); err != nil {
			t.Skipf("no namespace layer on this machine: %v", err)
		}
		f(t, Options{})
	})
	t.Run("no-bubblewrap", func(t *testing.T) { f(t, Options{NoBubblewrap: true}) })
}

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the job's own user, namespaces made by the runner")
	}
}

func needController(t testing.TB, s *Sandbox, name string) {
	t.Helper()
	if !slices.Contains(s.Layers().Controllers, name) {
		t.Skipf("this machine gives the sandbox no %s cgroup controller (%s)", name, s.Layers())
	}
}

// jobProcesses lists the live processes of the job's user, as
// "pid cmdline" strings.
func jobProcesses(s *Sandbox) map[int]string {
	out := map[int]string{}
	for _, p := range processesOf(s.uid) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline")
		out[p] = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

// TestLayers checks that every layer this machine offers is detected and
// active.
func TestLayers(t *testing.T) {
	needRoot(t)
	s := newSandbox(t, Options{Limits: Limits{Memory: 128 << 20, Pids: 100, CPU: 0.5}})
	l := s.Layers()
	if !l.User || l.UID < UIDBase || l.UID >= UIDBase+UIDCount || l.Weak() {
		t.Errorf("as root the job must run as a user of the range: %s", l)
	}
	if !l.NoNewPrivs || !l.NoCaps {
		t.Errorf("no_new_privs and no capabilities expected: %s", l)
	}
	if !strings.HasPrefix(l.String(), "isolation: cgroup=") {
		t.Errorf("String() = %q", l.String())
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil {
		for _, c := range []string{"memory", "pids", "cpu"} {
			if !slices.Contains(l.Controllers, c) {
				t.Errorf("cgroup v1 is mounted here but the job has no %s controller: %s", c, l)
			}
		}
		if d := s.cg.v1Dirs["cpu"]; d != "" {
			b, _ := os.ReadFile(filepath.Join(d, "cpu.cfs_quota_us"))
			if strings.TrimSpace(string(b)) != "50000" {
				t.Errorf("cpu.cfs_quota_us = %q, want 50000 (0.5 cores)", b)
			}
		}
	}
	if _, err := findTools(); err == nil {
		if l.FS != "bubblewrap" {
			t.Errorf("bubblewrap is installed but fs=%s", l.FS)
		}
		for _, ns := range []string{"user", "mount", "pid", "net", "ipc", "uts"} {
			if !slices.Contains(l.Namespaces, ns) {
				t.Errorf("namespace %s missing: %s", ns, l)
			}
		}
	}
	out, err := run(t, s, `id -u; echo "HOME=$HOME"; test -w "$HOME" && echo home-writable; touch "$TMPDIR/x" && echo tmp-writable; touch ./w && echo ws-writable; touch /usr/x 2>/dev/null || echo usr-readonly; touch /etc/x 2>/dev/null || echo etc-readonly`)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{strconv.Itoa(l.UID), "home-writable", "tmp-writable", "ws-writable", "usr-readonly", "etc-readonly"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestWeakFloor checks the floor: no cgroup, no user, no namespaces. The
// layers say so, commands still run, and Kill still kills what stayed in
// the process groups.
func TestWeakFloor(t *testing.T) {
	s := newSandbox(t, Options{Network: true, off: offCgroups | offUser | offNamespaces})
	l := s.Layers()
	if !l.Weak() || !strings.HasPrefix(l.String(), "isolation: weak (process groups only") {
		t.Fatalf("want weak isolation, got %s", l)
	}
	out, err := run(t, s, "echo hello; sleep 1000 >/dev/null 2>&1 &")
	if err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("%v: %s", err, out)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
}

// TestForkBomb: with a pids limit the bomb fails, the reason names the
// limit, the host keeps forking, Kill leaves nothing and the sandbox runs
// the next command.
func TestForkBomb(t *testing.T) {
	needRoot(t)
	modes(t, func(t *testing.T, opts Options) {
		opts.Limits = Limits{Pids: 64, Memory: 512 << 20}
		s := newSandbox(t, opts)
		needController(t, s, "pids")

		// A bounded loop that forks until the limit stops it: the command fails.
		out, err := run(t, s, `i=0; while [ $i -lt 1000 ]; do sleep 100 & i=$((i+1)); done; wait`)
		if err == nil {
			t.Fatalf("the fork loop succeeded under a pids limit of 64:\n%s", tail(out))
		}
		if r := s.Reason(); !strings.Contains(r, "pids limit (64) reached") {
			t.Errorf("Reason() = %q, want the pids limit", r)
		} else {
			t.Logf("reason: %s", r)
		}
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if p := jobProcesses(s); len(p) > 0 {
			t.Fatalf("processes survive Kill: %v", p)
		}

		// The classic bomb: its shell returns at once, the bomb grows in
		// the background until the limit.
		if _, err := run(t, s, `b() { b | b & }; b`); err != nil {
			t.Logf("bomb start: %v", err)
		}
		waitFor(t, 10*time.Second, "the bomb to reach the pids limit", func() bool {
			return strings.Contains(s.Reason(), "pids limit (64) reached")
		})
		if out, err := exec.Command("/bin/sh", "-c", "echo host forks fine").CombinedOutput(); err != nil {
			t.Fatalf("the host cannot fork: %v %s", err, out)
		}
		start := time.Now()
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Logf("Kill of the bomb took %v", time.Since(start))
		if p := jobProcesses(s); len(p) > 0 {
			t.Fatalf("processes survive Kill: %d", len(p))
		}
		if s.cg != nil {
			if p := s.cg.procs(); len(p) > 0 {
				t.Fatalf("cgroup not empty after Kill: %v", p)
			}
		}
		if out, err := run(t, s, "echo next"); err != nil || !strings.Contains(out, "next") {
			t.Fatalf("the sandbox does not run the next command: %v %s", err, out)
		}
	})
}

// TestMemoryLimit: a command allocating more than the limit is killed and
// the reason says memory limit.
func TestMemoryLimit(t *testing.T) {
	needRoot(t)
	modes(t, func(t *testing.T, opts Options) {
		opts.Limits = Limits{Memory: 64 << 20, Pids: 256}
		s := newSandbox(t, opts)
		needController(t, s, "memory")
		// tail keeps the last "line" of 200 MB without a newline in memory.
		out, err := run(t, s, `head -c 200M /dev/zero | tail > /dev/null`)
		if err == nil {
			t.Fatalf("allocating 200 MB under a 64 MiB limit succeeded: %s", out)
		}
		r := s.Reason()
		if !strings.Contains(r, "memory limit (64 MiB) exceeded") {
			t.Fatalf("Reason() = %q, want the memory limit (command: %v %s)", r, err, tail(out))
		}
		t.Logf("command: %v; reason: %s", err, r)
		if out, err := run(t, s, "echo still works"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	})
}

// TestSetsidAndDoubleFork: processes that left the process group (setsid)
// or were orphaned by a double fork do not survive Kill.
func TestSetsidAndDoubleFork(t *testing.T) {
	needRoot(t)
	modes(t, func(t *testing.T, opts Options) {
		s := newSandbox(t, opts)
		out, err := run(t, s, `setsid sleep 1000 >/dev/null 2>&1 &
(sleep 1001 >/dev/null 2>&1 &) &
sh -c 'setsid sh -c "sleep 1002 >/dev/null 2>&1 &" &'`)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		pids := waitSleeps(t, s, 3)
		t.Logf("host pids of the escaped sleeps: %v", pids)
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		for _, p := range pids {
			if alive(p) {
				t.Errorf("pid %d survives Kill", p)
			}
		}
		if p := jobProcesses(s); len(p) > 0 {
			t.Errorf("processes of the job survive Kill: %v", p)
		}
	})
}

// TestCannotSeeRunner: the job cannot read the runner's environment, its
// /proc/<pid>/environ, a file under its HOME or in a private directory,
// nor another job's workspace.
func TestCannotSeeRunner(t *testing.T) {
	needRoot(t)
	modes(t, func(t *testing.T, opts Options) {
		var rnd [12]byte
		_, _ = rand.Read(rnd[:])
		secret := "sekrit-" + hex.EncodeToString(rnd[:])
		t.Setenv("SIMPLECI_SANDBOX_TEST_SECRET", secret)

		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		homeFile := filepath.Join(home, ".simpleci-sandbox-test-"+hex.EncodeToString(rnd[:4]))
		if err := os.WriteFile(homeFile, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(homeFile) })
		private := filepath.Join(t.TempDir(), "private")
		if err := os.WriteFile(private, []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}

		other := newSandbox(t, opts)
		otherFile := filepath.Join(other.opts.Workspace, "secret.txt")
		if err := os.WriteFile(otherFile, []byte(secret), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := giveTo(other.opts.Workspace, other.uid, other.gid); err != nil {
			t.Fatal(err)
		}

		s := newSandbox(t, opts)
		if s.uid == other.uid {
			t.Fatalf("two sandboxes got the same uid %d", s.uid)
		}
		out, _ := run(t, s, `set +e
echo "env: [$SIMPLECI_SANDBOX_TEST_SECRET]"
cat /proc/$RUNNER_PID/environ; echo "runner environ: $?"
cat /proc/[0-9]*/environ 2>/dev/null | tr '\0' '\n' | grep SIMPLECI_SANDBOX_TEST_SECRET; echo "all environ grep: $?"
cat "$HOME_FILE"; echo "home file: $?"
cat "$PRIVATE"; echo "private file: $?"
ls "$OTHER_WS"; echo "other ls: $?"
cat "$OTHER_FILE"; echo "other file: $?"`,
			"RUNNER_PID="+strconv.Itoa(os.Getpid()), "HOME_FILE="+homeFile, "PRIVATE="+private,
			"OTHER_WS="+other.opts.Workspace, "OTHER_FILE="+otherFile)
		t.Logf("job output:\n%s", out)
		if strings.Contains(out, secret) {
			t.Fatalf("the secret leaked into the job")
		}
		for _, what := range []string{"runner environ", "all environ grep", "home file", "private file", "other ls", "other file"} {
			if !regexpFailed(out, what) {
				t.Errorf("%s: not denied", what)
			}
		}
		if !strings.Contains(out, "env: []") {
			t.Errorf("the runner's environment reached the job")
		}
	})
}

// regexpFailed reports whether the line "what: N" has N != 0.
func regexpFailed(out, what string) bool {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, what+": "); ok {
			return strings.TrimSpace(rest) != "0"
		}
	}
	return false
}

// TestNoInheritedFDs: a descriptor the runner opened without close-on-exec
// does not reach the job.
func TestNoInheritedFDs(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		fd, err := syscall.Open("/etc/hostname", syscall.O_RDONLY, 0) // no O_CLOEXEC on purpose
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		s := newSandbox(t, opts)
		out, err := run(t, s, `ls /proc/self/fd`)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		got := strings.Fields(out)
		// 3 is ls's own descriptor of the directory it lists.
		if strings.Join(got, " ") != "0 1 2 3" {
			t.Fatalf("the job has descriptors %v (the runner leaked %d); want 0 1 2 and ls's own 3", got, fd)
		}
	})
}

// TestNetwork: without network the job cannot reach the host's loopback,
// but its own commands reach each other's servers on loopback.
func TestNetwork(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl (to open TCP connections from sh) is not installed")
	}
	port := listen(t, "127.0.0.1")
	// $1 is the port.
	connect := `perl -MIO::Socket::INET -e '$c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:'"$1"'", Timeout => 3) or die "connect: $!\n"; print "got: ", scalar <$c>'`
	modes(t, func(t *testing.T, opts Options) {
		s := newSandbox(t, opts)
		if !slices.Contains(s.Layers().Namespaces, "net") {
			t.Skipf("no network namespace here: %s", s.Layers())
		}
		out, err := run(t, s, `set -- `+port+`; `+connect)
		if err == nil || strings.Contains(out, "got: host") {
			t.Fatalf("the job reached the host's 127.0.0.1:%s: %v %s", port, err, out)
		}
		t.Logf("connect to the host: %v %s", err, strings.TrimSpace(out))
		// A server a command leaves in the background serves the later commands.
		// The server says when it listens; the command waits for that (within the test's deadline).
		out, err = run(t, s, `perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:7777", Listen => 5, ReuseAddr => 1) or die "listen: $!\n"; open(my $f, ">", "$ENV{TMPDIR}/up"); close $f; while ($c = $s->accept) { print $c "job\n"; close $c }' >/dev/null 2>&1 &
until [ -e "$TMPDIR/up" ]; do sleep 0.05; done`)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		out, err = run(t, s, `set -- 7777; `+connect)
		if err != nil || !strings.Contains(out, "got: job") {
			t.Fatalf("a later command cannot reach the job's own server: %v %s", err, out)
		}

		if got := s.Layers().Net; got != "loopback" {
			t.Errorf("net=%s, want loopback", got)
		}
		out, err = run(t, s, `cat /proc/net/route; cat /proc/net/dev`)
		if err != nil || strings.Contains(out, "tap0") || strings.Contains(out, "eth") {
			t.Errorf("without network the job has more than loopback: %v\n%s", err, out)
		}
	})
}

// TestNetworkFiltered: with the network on, the job has its own namespace
// with a default route through slirp4netns, and the host's loopback, the
// host's own addresses, link-local, private and the operator's ranges are
// unreachable; slirp4netns is gone after Close.
func TestNetworkFiltered(t *testing.T) {
	needRoot(t)
	if findTool("slirp4netns") == "" {
		t.Skip("slirp4netns (Debian package slirp4netns) is not installed")
	}
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("perl (to open TCP connections from sh) is not installed")
	}
	// Listeners on the host's loopback and on its own non-loopback address.
	targets := map[string]string{}
	for _, addr := range []string{"127.0.0.1"} {
		targets[addr] = listen(t, addr)
	}
	own := hostAddresses()
	if len(own) == 0 {
		t.Fatal("the host has no non-loopback IPv4 address to test with")
	}
	targets[own[0].Addr().String()] = listen(t, own[0].Addr().String())
	deny, err := ParseNetworks([]string{"198.51.100.0/24"}, false)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := ParseNetworks([]string{"10.1.0.0/16"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// connect prints "got: ..." or "err: <errno text>".
	connect := func(hostPort string) string {
		return `perl -MIO::Socket::INET -e '$SIG{ALRM} = sub { print "got: (connected, nothing read)\n"; exit 0 }; alarm 3; $c = IO::Socket::INET->new(PeerAddr => "` + hostPort + `", Timeout => 2) or do { print "err: $!\n"; exit 0 }; print "got: ", scalar <$c>'`
	}
	modes(t, func(t *testing.T, opts Options) {
		opts.Network, opts.DenyNetworks, opts.AllowNetworks = true, deny, allow
		t0 := time.Now()
		s := newSandbox(t, opts)
		t.Logf("New took %v", time.Since(t0))
		l := s.Layers()
		if l.Net != "slirp4netns+filter" || !slices.Contains(l.Namespaces, "net") || !strings.Contains(l.String(), "net=slirp4netns+filter") {
			t.Fatalf("want a filtered network of the job's own: %s", l)
		}
		if m := l.Missing(); opts.NoBubblewrap == false && len(m) > 0 {
			t.Errorf("layers missing on a root runner with bubblewrap and slirp4netns: %v", m)
		}
		for addr, port := range targets {
			out, err := run(t, s, connect(addr+":"+port))
			if err != nil || strings.Contains(out, "got: host") || !strings.Contains(out, "err: ") {
				t.Errorf("the job reached the host's %s:%s: %v %s", addr, port, err, out)
			}
			t.Logf("connect to the host's %s: %s", addr, strings.TrimSpace(out))
		}
		// Denied ranges fail at once with EACCES: the packet never leaves.
		for _, addr := range []string{"169.254.169.254:80", "10.9.9.9:80", "192.168.1.1:80", "172.16.0.1:80", "198.51.100.7:80"} {
			out, err := run(t, s, connect(addr))
			if err != nil || !strings.Contains(out, "err: Permission denied") {
				t.Errorf("connect to %s: %v %q, want permission denied (prohibit route)", addr, err, out)
			}
		}
		// The way out: tap0 with 10.0.2.100, a default route through
		// slirp4netns, which answers (refuses) for its gateway, and the
		// allowed part of a private range goes out the same way.
		out, err := run(t, s, `cat /proc/net/route; cat /proc/net/dev`)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !regexp.MustCompile(`(?m)^tap0\s+00000000\s+0202000A\s`).MatchString(out) {
			t.Errorf("no default route via 10.0.2.2 on tap0 in the job:\n%s", out)
		}
		for _, addr := range []string{slirpGateway + ":80", "10.1.2.3:80"} {
			out, err = run(t, s, connect(addr))
			// Whether it connects depends on what is behind the host (here
			// a proxy accepts anything); it must not be refused in the job.
			if err != nil || strings.Contains(out, "Permission denied") {
				t.Errorf("connect to %s: %v %q, want it sent to slirp4netns (connected, or refused or unreachable there; not by a prohibit route)", addr, err, out)
			}
			t.Logf("connect to %s: %s", addr, strings.TrimSpace(out))
		}
		if s.TempDir() == "/tmp" {
			out, _ = run(t, s, `cat /etc/resolv.conf`)
			if strings.TrimSpace(out) != "nameserver "+slirpDNS {
				t.Errorf("the job's resolv.conf %q, want slirp4netns's forwarder", out)
			}
		}
		// The job cannot change its routes.
		if ip := findTool("ip"); ip != "" {
			out, err = run(t, s, ip+` route del prohibit 169.254.0.0/16`)
			if err == nil {
				t.Errorf("the job removed a prohibit route: %s", out)
			}
		}
		pid := s.slirp.cmd.Process.Pid
		t0 = time.Now()
		defer func() { t.Logf("Close took %v", time.Since(t0)) }()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && strings.Contains(string(b), "slirp4netns") {
			t.Errorf("slirp4netns (pid %d) survives Close", pid)
		}
		if left := slirpProcesses(); len(left) > 0 {
			t.Errorf("slirp4netns processes of this runner left after Close: %v", left)
		}
	})
}

// slirpProcesses lists the slirp4netns processes whose namespace path
// names this process.
func slirpProcesses() []int {
	var out []int
	mine := "/proc/" + strconv.Itoa(os.Getpid()) + "/task/"
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(b), "slirp4netns") && strings.Contains(string(b), mine) {
			out = append(out, pid)
		}
	}
	return out
}

// listen serves "host" on addr at a free port until the test ends and
// returns the port.
func listen(t *testing.T, addr string) string {
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
			c.Write([]byte("host\n"))
			c.Close()
		}
	}()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestNetworkFailsClosed: a job without network is refused when no network
// namespace can be made; a job with network then gets the host's, and
// Missing says so.
func TestNetworkFailsClosed(t *testing.T) {
	_, err := New("closed", Options{Workspace: newWorkspace(t), off: offNamespaces}, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "refused: the job would share the host's network") {
		t.Fatalf("network off without a namespace: %v, want refused", err)
	}
	s := newSandbox(t, Options{Network: true, off: offNamespaces})
	if l := s.Layers(); l.Net != "host" || !slices.ContainsFunc(l.Missing(), func(m string) bool { return strings.HasPrefix(m, "network namespace") }) {
		t.Fatalf("network on without a namespace: %s, missing %v", l, l.Missing())
	}
}

func TestParseNetworks(t *testing.T) {
	for _, c := range []struct {
		in    string
		allow bool
		err   string
	}{
		{"10.0.0.0/8", true, ""},
		{"192.168.7.0/24", true, ""},
		{"10.1.2.3/16", false, ""},
		{"8.8.8.0/24", true, "only parts of the private ranges"},
		{"169.254.0.0/16", true, "only parts of the private ranges"},
		{"0.0.0.0/0", true, "only parts of the private ranges"},
		{"fd00::/8", false, "only IPv4"},
		{"10.0.0.1", false, "not a CIDR range"},
	} {
		_, err := ParseNetworks([]string{c.in}, c.allow)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) || (err != nil && !strings.Contains(err.Error(), c.in)) {
			t.Errorf("ParseNetworks(%q, %v) = %v, want %q", c.in, c.allow, err, c.err)
		}
	}
}

// TestForkExec: the engine's path (syscall.ForkExec, wait4, process
// groups) with exit codes and signals kept.
func TestForkExec(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		s := newSandbox(t, opts)
		for _, tc := range []struct {
			script string
			code   int
			sig    syscall.Signal
			out    string
		}{
			{script: "echo out; exit 3", code: 3, out: "out\n"},
			{script: "kill -TERM $$", sig: syscall.SIGTERM},
			{script: "pwd", out: s.opts.Workspace + "\n"},
		} {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			devNull, _ := os.Open(os.DevNull)
			pid, err := s.ForkExec("/bin/sh", []string{"/bin/sh", "-e", "-c", tc.script}, &syscall.ProcAttr{
				Dir:   s.opts.Workspace,
				Env:   jobEnv(s),
				Files: []uintptr{devNull.Fd(), w.Fd(), w.Fd()},
				Sys:   &syscall.SysProcAttr{Setpgid: true},
			})
			w.Close()
			devNull.Close()
			if err != nil {
				t.Fatal(err)
			}
			if pgid, _ := syscall.Getpgid(pid); pgid != pid {
				t.Errorf("pgid %d, want the process's own group %d", pgid, pid)
			}
			var out bytes.Buffer
			_, _ = out.ReadFrom(r)
			r.Close()
			var ws syscall.WaitStatus
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.sig != 0:
				if !ws.Signaled() || ws.Signal() != tc.sig {
					t.Errorf("%q: status %v, want killed by %v", tc.script, ws, tc.sig)
				}
			case ws.ExitStatus() != tc.code:
				t.Errorf("%q: exit %d, want %d", tc.script, ws.ExitStatus(), tc.code)
			}
			if out.String() != tc.out {
				t.Errorf("%q: output %q, want %q", tc.script, out.String(), tc.out)
			}
		}
	})
}

// TestEnvironment: exactly the given environment reaches the command,
// including the variables that must not reach nsenter.
func TestEnvironment(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		s := newSandbox(t, opts)
		out, err := run(t, s, `env | sort`, "LD_LIBRARY_PATH=/nonexistent", "FOO=bar baz", "MALLOC_ARENA_MAX=2")
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		got := strings.Fields(strings.ReplaceAll(out, "bar baz", "bar_baz"))
		want := []string{"FOO=bar_baz", "HOME=" + s.Home(), "LD_LIBRARY_PATH=/nonexistent", "MALLOC_ARENA_MAX=2", "PATH=/usr/local/bin:/usr/bin:/bin", "PWD=" + s.opts.Workspace, "TMPDIR=" + s.TempDir()}
		var clean []string
		for _, kv := range got {
			if !strings.HasPrefix(kv, "OLDPWD=") && !strings.HasPrefix(kv, "SHLVL=") && !strings.HasPrefix(kv, "_=") {
				clean = append(clean, kv)
			}
		}
		if strings.Join(clean, " ") != strings.Join(want, " ") {
			t.Errorf("environment:\n got %v\nwant %v", clean, want)
		}
	})
}

// TestCleanupStale: a runner killed with SIGKILL leaves a job cgroup with
// a live process in it; CleanupStale kills the process and removes the
// cgroup and the sandbox's state.
func TestCleanupStale(t *testing.T) {
	needRoot(t)
	modes(t, func(t *testing.T, opts Options) {
		mode := "no-bubblewrap"
		if !opts.NoBubblewrap {
			mode = "bubblewrap"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+mode, "SIMPLECI_SANDBOX_TEST_ROOT="+testRoot)
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var pid, slirpPid int
		var name string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, err := fmt.Sscanf(sc.Text(), "ready %d %s %d", &pid, &name, &slirpPid); err == nil {
				break
			}
		}
		if pid == 0 {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the helper runner did not start its job")
		}
		t.Logf("helper runner %d started job process %d in sandbox %s (slirp4netns %d); killing the runner with SIGKILL", cmd.Process.Pid, pid, name, slirpPid)
		cmd.Process.Kill()
		cmd.Wait()
		if slirpPid != 0 {
			// The kernel closed the runner's end of its exit descriptor.
			waitGone(t, slirpPid, 5*time.Second)
		}
		groups := groupDirs(name)
		if len(groups) == 0 {
			t.Fatalf("no cgroup of the crashed runner's sandbox %s", name)
		}
		if mode == "bubblewrap" {
			// bwrap dies with the runner's launcher thread, and the job's
			// PID namespace with it.
			waitGone(t, pid, 5*time.Second)
		} else if !alive(pid) {
			t.Fatalf("the job process %d died with the runner; nothing to clean up", pid)
		}
		if err := CleanupStale(testLogger(t)); err != nil {
			t.Fatal(err)
		}
		if alive(pid) {
			t.Errorf("job process %d survives CleanupStale", pid)
		}
		for _, d := range groups {
			if _, err := os.Stat(d); err == nil {
				t.Errorf("cgroup %s survives CleanupStale", d)
			}
		}
		if _, err := os.Stat(filepath.Join(stateBase(), name)); err == nil {
			t.Errorf("state directory of %s survives CleanupStale", name)
		}
	})
}

func waitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("process %d to end", pid), func() bool { return !alive(pid) })
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSleeps waits until n "sleep 100x" processes of the job run, and
// returns their host pids.
func waitSleeps(t *testing.T, s *Sandbox, n int) []int {
	t.Helper()
	var pids []int
	waitFor(t, 10*time.Second, fmt.Sprintf("%d sleeps of the job", n), func() bool {
		pids = pids[:0]
		for p, cmdline := range jobProcesses(s) {
			if strings.HasPrefix(cmdline, "sleep 100") {
				pids = append(pids, p)
			}
		}
		return len(pids) == n
	})
	sort.Ints(pids)
	return pids
}

// groupDirs lists the cgroup directories of sandbox name in every hierarchy.
func groupDirs(name string) []string {
	var out []string
	c := loadJobCgroups(name, v1Wanted)
	for _, d := range c.v1Dirs {
		out = append(out, d)
	}
	if c.v2Dir != "" {
		out = append(out, c.v2Dir)
	}
	return out
}

// staleHelper is a runner that starts a job which escapes its process
// group, reports it, and waits to be killed.
func staleHelper(mode string) {
	testRoot = os.Getenv("SIMPLECI_SANDBOX_TEST_ROOT")
	ws, err := os.MkdirTemp(testRoot, "ws-stale-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// With the network on (where slirp4netns is installed): its slirp4netns must
	// not outlive the runner either.
	network := findTool("slirp4netns") != ""
	s, err := New("stale", Options{Workspace: ws, NoBubblewrap: mode != "bubblewrap", Network: network, Limits: Limits{Pids: 32}}, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd, err := s.Command(context.Background(), ws, []string{"PATH=/usr/bin:/bin"}, "/bin/sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 &")
	if err == nil {
		err = s.Start(cmd)
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for p, cmdline := range jobProcesses(s) {
			if cmdline == "sleep 1000" {
				slirpPid := 0
				if s.slirp != nil {
					slirpPid = s.slirp.cmd.Process.Pid
				}
				fmt.Printf("ready %d %s %d\n", p, s.name, slirpPid)
				select {}
			}
		}
	}
	fmt.Fprintln(os.Stderr, "no sleep found")
	os.Exit(1)
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// TestOrphansReaped: when the runner is a child subreaper (the engine makes
// it one), the job's orphans are re-parented to it; Kill reaps them, so
// that no zombie of the job is left in the runner.
func TestOrphansReaped(t *testing.T) {
	needRoot(t)
	if !isSubreaper() {
		t.Skip("the test process could not become a child subreaper")
	}
	s := newSandbox(t, Options{NoBubblewrap: true})
	out, err := run(t, s, `setsid sleep 1000 >/dev/null 2>&1 & (sleep 1001 >/dev/null 2>&1 &) &`)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	waitSleeps(t, s, 2)
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		st := string(b)
		if strings.Contains(st, "\nPPid:\t"+me+"\n") && strings.Contains(st, "\nState:\tZ") && strings.Contains(st, "\nUid:\t"+strconv.Itoa(s.uid)+"\t") {
			t.Errorf("zombie of the job left in the runner: pid %s", e.Name())
		}
	}
}

// TestLeftoversRemoved: without bubblewrap the job shares the host's /tmp;
// Close removes what it left there, so that a later job with the same uid
// finds nothing.
func TestLeftoversRemoved(t *testing.T) {
	needRoot(t)
	ws := newWorkspace(t)
	s, err := New("leftovers", Options{Workspace: ws, NoBubblewrap: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("active layers: %s", s.Layers())
	name := "simpleci-leftover-" + strconv.Itoa(s.uid)
	out, err := run(t, s, `mkdir -p /tmp/`+name+`/d && echo x > /tmp/`+name+`/d/f && echo y > /dev/shm/`+name)
	if err != nil {
		s.Close()
		t.Fatalf("%v: %s", err, out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/tmp/" + name, "/dev/shm/" + name} {
		if _, err := os.Lstat(p); err == nil {
			os.RemoveAll(p)
			t.Errorf("%s survives Close", p)
		}
	}
}

// TestCommandAcrossKill: a command made before a Kill starts after it (in
// the job's new PID namespace and cgroup) and runs.
func TestCommandAcrossKill(t *testing.T) {
	modes(t, func(t *testing.T, opts Options) {
		s := newSandbox(t, opts)
		if out, err := run(t, s, "sleep 1000 >/dev/null 2>&1 &"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		cmd, err := s.Command(context.Background(), "", jobEnv(s), "/bin/sh", "-c", "echo after; readlink /proc/self/ns/net /proc/self/ns/pid")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := s.Start(cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil || !strings.HasPrefix(out.String(), "after\n") {
			t.Fatalf("%v: %q", err, out.String())
		}
		// The namespaces the job had are still the job's own.
		for _, ns := range []string{"net", "pid"} {
			if !slices.Contains(s.Layers().Namespaces, ns) {
				continue
			}
			host, _ := os.Readlink("/proc/self/ns/" + ns)
			if strings.Contains(out.String(), host) {
				t.Errorf("after Kill the command shares the runner's %s namespace: %s", ns, out.String())
			}
		}
	})
}

// TestUIDReuse: a uid whose last holder did not say it left no process
// behind (a crashed runner's "held") is not given out while a process runs
// as it, and is once none does; Close marks the uid it gives back clean.
// (Other runners on the machine may take uids meanwhile: the test then says
// so and stops.)
func TestUIDReuse(t *testing.T) {
	needRoot(t)
	base, err := makeStateBase()
	if err != nil {
		t.Fatal(err)
	}
	next := func() int { return UIDBase + int((uidCursor.Load()+1)%UIDCount) }
	uid := next()
	for isAccount(uid) || lockHeld(uidLockFile(base, uid)) {
		uidCursor.Add(1)
		uid = next()
	}
	if err := os.WriteFile(uidLockFile(base, uid), []byte(uidHeld), 0o600); err != nil {
		t.Fatal(err)
	}
	left := exec.Command("/bin/sleep", "100")
	left.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { left.Process.Kill(); left.Wait() })
	cursor := uidCursor.Load()
	got, f, err := allocateUID(base)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got == uid {
		t.Fatalf("allocateUID gave uid %d, which process %d runs as", uid, left.Process.Pid)
	}
	left.Process.Kill()
	left.Wait()
	uidCursor.Store(cursor)
	got, f, err = allocateUID(base)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got != uid {
		if lockHeld(uidLockFile(base, uid)) {
			t.Skipf("another sandbox on the machine took uid %d meanwhile", uid)
		}
		t.Fatalf("allocateUID gave uid %d, want %d, which no process runs as any more", got, uid)
	}
	if b, _ := os.ReadFile(uidLockFile(base, uid)); string(b) != uidHeld {
		t.Errorf("lock file of a uid given out says %q, want %q", b, uidHeld)
	}
	s, err := New("uid-reuse", Options{Workspace: newWorkspace(t), NoBubblewrap: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, s, "sleep 100 >/dev/null 2>&1 &"); err != nil {
		s.Close()
		t.Fatalf("%v: %s", err, out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(uidLockFile(base, s.uid)); string(b) != uidClean {
		t.Errorf("lock file after Close says %q, want %q", b, uidClean)
	}
	if n := processesOf(s.uid); len(n) > 0 {
		t.Errorf("processes %v of uid %d survive Close", n, s.uid)
	}
}
