package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// shellPath is the shell of the sandbox's own helper scripts.
const shellPath = "/bin/sh"

// tools are the programs the namespace layer needs, found in the system
// directories (never through a job's PATH).
type tools struct {
	bwrap, nsenter, env string
}

func findTool(name string) string {
	for _, d := range []string{"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// findTools returns the tools, or why the namespace layer is unavailable.
func findTools() (*tools, error) {
	t := &tools{bwrap: findTool("bwrap"), nsenter: findTool("nsenter"), env: findTool("env")}
	var missing []string
	if t.bwrap == "" {
		missing = append(missing, "bwrap (Debian package bubblewrap)")
	}
	if t.nsenter == "" {
		missing = append(missing, "nsenter (util-linux)")
	}
	if t.env == "" {
		missing = append(missing, "env (coreutils)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("not found: %s", strings.Join(missing, ", "))
	}
	if fi, err := os.Stat(t.bwrap); err == nil && fi.Mode()&os.ModeSetuid != 0 {
		return nil, errors.New("bwrap is installed setuid root; the sandbox uses it only unprivileged")
	}
	return t, nil
}

// holder keeps the job's user, mount and PID namespaces alive. It is one
// bubblewrap per job, started as the job's user, that sets up the minimal
// filesystem and then runs `sleep infinity` under bwrap's own init (PID 1
// of the job's PID namespace, which reaps the job's orphans). Every command
// of the job then enters its namespaces with nsenter, so that, as without
// the sandbox, a process a step leaves in the background is still there,
// and visible, in later steps. When the holder dies, its PID namespace
// dies with every process in it.
type holder struct {
	cmd *exec.Cmd
	// init is the host PID of the namespace's init (bwrap's PID 1); the
	// commands enter its namespaces.
	init int
	// enter are nsenter's flags for the namespaces the holder has that
	// the launcher thread has not.
	enter []string
	done  chan struct{}
	out   *syncBuffer
}

// alive reports whether the holder still runs.
func (h *holder) alive() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// syncBuffer keeps the first 4 KiB written to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}

// holderArgs are bwrap's arguments for the job's filesystem view.
func (s *Sandbox) holderArgs(unshare []string) []string {
	a := []string{"--unshare-user", "--unshare-pid", "--unshare-cgroup-try"}
	for _, ns := range unshare {
		a = append(a, "--unshare-"+ns)
		if ns == "uts" {
			a = append(a, "--hostname", hostname)
		}
	}
	a = append(a, "--die-with-parent", "--info-fd", "3",
		"--ro-bind", "/usr", "/usr")
	// Merged /usr (Debian 12): /bin, /lib, ... are symbolic links into /usr.
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				a = append(a, "--symlink", target, d)
			}
		case fi.IsDir():
			a = append(a, "--ro-bind", d, d)
		}
	}
	a = append(a,
		"--ro-bind", "/etc", "/etc",
		"--ro-bind", filepath.Join(s.dir, "passwd"), "/etc/passwd",
		"--ro-bind", filepath.Join(s.dir, "group"), "/etc/group",
		"--ro-bind-try", "/opt", "/opt",
		"--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve")
	if s.slirp != nil {
		// The job resolves through slirp4netns's forwarder. /etc/resolv.conf may
		// be a link (systemd-resolved's stub file): cover what it points to, if
		// that is in the view; otherwise the host's file stays.
		if dst, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil &&
			(strings.HasPrefix(dst, "/etc/") || strings.HasPrefix(dst, "/run/systemd/resolve/")) {
			a = append(a, "--ro-bind", s.resolvConf(), dst)
		} else {
			s.log.Warn("sandbox: the job keeps the host's /etc/resolv.conf; its resolver may be unreachable from the job", "resolv.conf", dst, "err", err)
		}
	}
	a = append(a,
		"--proc", "/proc",
		// A /dev of the harmless nodes. bwrap's --dev would need a second
		// user namespace (for devpts) that nsenter could not enter.
		"--tmpfs", "/dev")
	for _, n := range []string{"null", "zero", "full", "random", "urandom"} {
		a = append(a, "--dev-bind-try", "/dev/"+n, "/dev/"+n)
	}
	a = append(a,
		"--symlink", "/proc/self/fd", "/dev/fd",
		"--symlink", "/proc/self/fd/0", "/dev/stdin",
		"--symlink", "/proc/self/fd/1", "/dev/stdout",
		"--symlink", "/proc/self/fd/2", "/dev/stderr",
		"--bind", s.shm, "/dev/shm",
		"--remount-ro", "/dev",
		"--bind", s.tmp, "/tmp",
		"--dir", "/var",
		"--symlink", "../tmp", "/var/tmp",
		"--bind", s.home, s.home)
	if s.opts.Workspace != "" {
		a = append(a, "--bind", s.opts.Workspace, s.opts.Workspace)
	}
	a = append(a, "--remount-ro", "/", "--chdir", "/",
		"--", shellPath, "-c", "echo ready; exec sleep infinity >/dev/null 2>&1")
	return a
}

// startHolder starts the holder; the caller holds s.mu.
func (s *Sandbox) startHolder() (*holder, error) {
	// Namespaces the launcher thread could not make, bwrap makes.
	var unshare []string
	for _, ns := range s.wantThreadNS() {
		if !slices.Contains(s.l.unshared, ns) {
			unshare = append(unshare, ns)
		}
	}
	infoR, infoW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer infoR.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		infoW.Close()
		return nil, err
	}
	defer outR.Close()
	h := &holder{done: make(chan struct{}), out: &syncBuffer{}}
	cmd := exec.Command(s.tools.bwrap, s.holderArgs(unshare)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.Stdout = outW
	cmd.Stderr = h.out
	cmd.ExtraFiles = []*os.File{infoW}
	cmd.SysProcAttr = s.sysProcAttr(nil)
	s.intoCgroup(cmd.SysProcAttr)
	cmd.WaitDelay = time.Second
	h.cmd = cmd
	err = s.launch(func() error { return cmd.Start() })
	infoW.Close()
	outW.Close()
	if err != nil {
		return nil, fmt.Errorf("start bwrap: %w", err)
	}
	_ = s.cg.addProcIfAny(cmd.Process.Pid)
	go func() {
		_ = cmd.Wait()
		close(h.done)
	}()
	fail := func(err error) (*holder, error) {
		_ = cmd.Process.Kill()
		<-h.done
		if msg := h.out.String(); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	infoR.SetReadDeadline(deadline)
	info, err := io.ReadAll(infoR)
	if err != nil {
		return fail(fmt.Errorf("bwrap info: %w", err))
	}
	var ii struct {
		ChildPid int `json:"child-pid"`
	}
	if err := json.Unmarshal(info, &ii); err != nil || ii.ChildPid <= 0 {
		return fail(fmt.Errorf("bwrap info %q: %v", info, err))
	}
	h.init = ii.ChildPid
	outR.SetReadDeadline(deadline)
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return fail(fmt.Errorf("bwrap did not start its command (%q, %v)", line, err))
	}
	// Enter every namespace of the holder that the launcher thread does
	// not already share (user, mount and pid always).
	flags := map[string]string{"user": "-U", "mnt": "-m", "pid": "-p", "net": "-n", "ipc": "-i", "uts": "-u", "cgroup": "-C"}
	for _, ns := range []string{"user", "mnt", "pid", "net", "ipc", "uts", "cgroup"} {
		theirs, _ := os.Readlink("/proc/" + strconv.Itoa(h.init) + "/ns/" + ns)
		if theirs != "" && theirs != s.l.nsLink(ns) {
			h.enter = append(h.enter, flags[ns])
		}
	}
	if len(h.enter) < 3 {
		return fail(fmt.Errorf("bwrap made namespaces %v only", h.enter))
	}
	return h, nil
}

// wantThreadNS are the namespaces a job should not share with the host,
// besides user, mount and pid.
func (s *Sandbox) wantThreadNS() []string {
	if !s.netNS {
		return []string{"ipc", "uts"}
	}
	return []string{"net", "ipc", "uts"}
}

// unsafeEnv reports whether the dynamic loader or the C library of a
// helper that runs outside the sandbox (nsenter, before it enters the
// namespaces) would act on the variable: those are passed to the command
// by env(1) inside the sandbox instead.
func unsafeEnv(kv string) bool {
	name, _, _ := strings.Cut(kv, "=")
	if strings.HasPrefix(name, "LD_") || strings.HasPrefix(name, "MALLOC_") {
		return true
	}
	switch name {
	case "GCONV_PATH", "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
		"NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR":
		return true
	}
	return false
}
