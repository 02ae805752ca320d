package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/containerd/cgroups/v3/cgroup1"
	"golang.org/x/sys/unix"
)

// Limits are the resource limits of one job. A zero field means no limit.
type Limits struct {
	// Memory is the most memory the job's processes may use together, in
	// bytes; swap is not allowed on top of it where the kernel accounts
	// for swap. Past it the kernel's OOM killer kills a process of the job.
	Memory int64
	// Pids is the most processes (and threads) the job may have at once,
	// the sandbox's own helpers included: bwrap's two processes and one
	// nsenter per running command.
	Pids int64
	// CPU is the most CPU time the job may use per second of wall-clock
	// time, in cores: 1.5 is one and a half cores.
	CPU float64
}

// Options configure a [Sandbox].
type Options struct {
	Limits
	// Workspace is the job's checkout: the only writable place besides
	// the job's HOME and private /tmp. New makes it (recursively) owned by
	// the job's user and mode 0700. Its parent directories must be
	// traversable (o+x) by that user. Optional.
	Workspace string
	// Network lets the job connect out. The job always has a network
	// namespace of its own, shared by all its commands (a server a step
	// starts on 127.0.0.1 is reachable from the later steps, and from
	// nothing else). Without Network it has loopback only; New fails when
	// it cannot make the namespace. With Network (root and slirp4netns
	// needed) it also has tap0 with a default route through slirp4netns,
	// and the host's own addresses, [DeniedRanges] and DenyNetworks are
	// unreachable; where that cannot be had the job gets the host's
	// network and [Layers.Net] says "host" ([Layers.Missing] names it).
	Network bool
	// DenyNetworks are further IPv4 ranges a job with Network may not
	// reach (the operator's internal networks).
	DenyNetworks []netip.Prefix
	// AllowNetworks are parts of [PrivateRanges] a job with Network may
	// reach after all (see [ParseNetworks]). A more specific denied range
	// still wins.
	AllowNetworks []netip.Prefix
	// UID and GID are the job's user and group. Zero takes a uid from
	// [UIDBase, UIDBase+UIDCount) with the same gid. A uid given here
	// must be dedicated to this job: [Sandbox.Kill] kills every process
	// of it. Used only when the runner is root; otherwise the job runs as
	// the runner's user.
	UID, GID int
	// NoBubblewrap turns the namespace and filesystem layer off even when
	// bubblewrap is installed.
	NoBubblewrap bool

	// off turns layers off, for the tests of the weaker configurations.
	off layerSet
}

// layerSet names layers, for tests that turn them off.
type layerSet uint8

const (
	offCgroups layerSet = 1 << iota
	offUser
	offNamespaces
)

// Sandbox runs the processes of one job, isolated by every layer the
// machine allows: a cgroup with the job's limits, an unprivileged user of
// its own, no_new_privs, namespaces and a minimal filesystem view.
// [Sandbox.Layers] says which. Its methods are safe for concurrent use.
type Sandbox struct {
	name    string
	opts    Options
	log     *slog.Logger
	uid     int
	gid     int
	setUser bool
	dir     string // the state directory: passwd, group, home, tmp, shm
	home    string
	tmp     string
	shm     string
	lock    *os.File
	uidLock *os.File
	cg      *jobCgroups // nil: no cgroups
	l       *launcher
	origin  cgroup1.Cgroup // the launcher thread's own v1 groups
	tools   *tools         // nil: no namespace and filesystem layer
	layers  Layers
	// netNS is true when the job gets a network namespace of its own:
	// always without Network, with Network when slirp4netns gives it a
	// filtered way out.
	netNS bool
	slirp *slirp // nil: no user-mode network stack

	mu     sync.Mutex
	holder *holder
	enter  []string // nsenter's namespace flags (set by the first holder)
	pgids  []int    // process groups of the processes started, for the floor
	snap   counters
	cmds   map[*exec.Cmd]bool
	closed bool
}

// New makes the sandbox of one job: it probes what the machine allows, sets
// up every layer it can (a cgroup with the limits, the job's user, the
// namespaces and the filesystem view) and runs a probe command through the
// sandbox to confirm them. A missing layer is logged and left out (and
// named by [Layers.Missing]); New fails when the job could not run at all
// (the workspace cannot be given to the job's user, no uid is free, ...),
// when a job without network would share the host's network (no network
// namespace), and when the filtered network of a job with network cannot
// be set up although slirp4netns is there.
//
// jobID names the sandbox in cgroup and directory names. log receives one
// line per missing layer and the [Layers] line.
func New(jobID string, opts Options, log *slog.Logger) (_ *Sandbox, err error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Sandbox{opts: opts, log: log, cmds: map[*exec.Cmd]bool{}, uid: os.Geteuid(), gid: os.Getegid()}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if opts.Workspace != "" {
		ws, err := filepath.Abs(opts.Workspace)
		if err == nil {
			ws, err = filepath.EvalSymlinks(ws)
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox: workspace: %w", err)
		}
		if fi, err := os.Stat(ws); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("sandbox: workspace %s is not a directory", ws)
		}
		s.opts.Workspace = ws
	}
	base, err := makeStateBase()
	if err != nil {
		return nil, fmt.Errorf("sandbox: state directory: %w", err)
	}
	s.name = sandboxName(jobID)
	f, ok, err := tryLock(filepath.Join(base, s.name+".lock"))
	if err != nil || !ok {
		return nil, fmt.Errorf("sandbox: lock: %v", err)
	}
	s.lock = f

	// The job's user.
	root := os.Geteuid() == 0
	switch {
	case !root:
		log.Info("sandbox: the runner is not root: the job runs as the runner's user", "uid", s.uid)
	case opts.off&offUser != 0:
	case opts.UID > 0:
		s.uid, s.gid, s.setUser = opts.UID, opts.GID, true
		if s.gid <= 0 {
			s.gid = s.uid
		}
		lock, ok, err := tryLock(uidLockFile(base, s.uid))
		if err != nil || !ok {
			return nil, fmt.Errorf("sandbox: uid %d is used by another sandbox (%v)", s.uid, err)
		}
		if err := markUID(lock, uidHeld); err != nil {
			lock.Close()
			return nil, fmt.Errorf("sandbox: uid %d: %w", s.uid, err)
		}
		s.uidLock = lock
	default:
		uid, lock, err := allocateUID(base)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		s.uid, s.gid, s.setUser, s.uidLock = uid, uid, true, lock
	}
	if err := s.makeState(base); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if s.setUser && s.opts.Workspace != "" {
		if err := giveTo(s.opts.Workspace, s.uid, s.gid); err != nil {
			return nil, fmt.Errorf("sandbox: workspace: %w", err)
		}
		if err := reachable(s.opts.Workspace, s.uid, s.gid); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}

	// Cgroups.
	if opts.off&offCgroups == 0 {
		var notes []string
		s.cg, notes = newJobCgroups(s.name, opts.Limits)
		for _, n := range notes {
			log.Info("sandbox: "+n, "job", jobID)
		}
	}

	// The launcher thread: no_new_privs and the job-wide namespaces.
	wantNS := root && opts.off&offNamespaces == 0
	slirpBin := ""
	if opts.Network {
		switch slirpBin = findTool("slirp4netns"); {
		case slirpBin == "":
			log.Warn("sandbox: slirp4netns (Debian package slirp4netns) not found: a job with the network on gets the host's network")
		case !wantNS:
			log.Warn("sandbox: a job with the network on gets the host's network: its filtered network needs a root runner")
			slirpBin = ""
		}
	}
	s.netNS = !opts.Network || slirpBin != ""
	s.l = newLauncher(s.netNS, wantNS)
	if s.l.setupErr != nil {
		log.Info("sandbox: namespaces of the launcher thread", "err", s.l.setupErr)
	}
	if slirpBin != "" {
		if !slices.Contains(s.l.unshared, "net") {
			return nil, fmt.Errorf("sandbox: no network namespace for the job: %v", s.l.setupErr)
		}
		if err := s.setupNetwork(slirpBin); err != nil {
			return nil, fmt.Errorf("sandbox: the job's network: %w", err)
		}
	}

	// Namespaces and filesystem: bubblewrap.
	if !opts.NoBubblewrap && opts.off&offNamespaces == 0 {
		t, err := findTools()
		if err != nil {
			log.Info("sandbox: no namespaces and filesystem view: " + err.Error())
		} else {
			s.tools = t
		}
	}
	if s.tools != nil {
		s.mu.Lock()
		s.holder, err = s.startHolder()
		if err == nil {
			s.enter = s.holder.enter
		}
		s.mu.Unlock()
		if err != nil {
			log.Warn("sandbox: bubblewrap failed; running without namespaces and filesystem view", "err", err)
			s.tools = nil
		}
	}
	s.layers, err = s.probe()
	if err != nil && s.tools != nil {
		log.Warn("sandbox: probe through bubblewrap failed; running without it", "err", err)
		s.mu.Lock()
		s.stopHolderLocked()
		s.tools = nil
		s.mu.Unlock()
		s.layers, err = s.probe()
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: probe: %w", err)
	}
	if s.netNS && !slices.Contains(s.layers.Namespaces, "net") {
		// Never the host's network for a job that was to have none (or a
		// filtered one).
		return nil, errors.New("sandbox: refused: the job would share the host's network: no network namespace could be made (a root runner makes one; otherwise bubblewrap with unprivileged user namespaces)")
	}
	log.Info(s.layers.String(), "job", jobID)
	return s, nil
}

// sandboxName is jobID made safe for a path, with a random suffix.
func sandboxName(jobID string) string {
	var b strings.Builder
	for _, r := range jobID {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	if b.Len() == 0 {
		b.WriteString("job")
	}
	return b.String() + "-" + hex.EncodeToString(rnd[:])
}

// makeState makes the state directory: HOME, the private /tmp and
// /dev/shm owned by the job's user, and the passwd and group files that
// bubblewrap shows the job (the host's plus the job's user).
func (s *Sandbox) makeState(base string) error {
	s.dir = filepath.Join(base, s.name)
	if err := os.Mkdir(s.dir, 0o711); err != nil {
		return err
	}
	s.home, s.tmp, s.shm = filepath.Join(s.dir, "home"), filepath.Join(s.dir, "tmp"), filepath.Join(s.dir, "shm")
	for _, d := range []string{s.home, s.tmp, s.shm} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if err := os.Chown(d, s.uid, s.gid); err != nil {
			return err
		}
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	group, _ := os.ReadFile("/etc/group")
	if len(passwd) > 0 && passwd[len(passwd)-1] != '\n' {
		passwd = append(passwd, '\n')
	}
	if len(group) > 0 && group[len(group)-1] != '\n' {
		group = append(group, '\n')
	}
	if s.setUser {
		passwd = fmt.Appendf(passwd, "simpleci-job:x:%d:%d:SimpleCI job:%s:/bin/sh\n", s.uid, s.gid, s.home)
		group = fmt.Appendf(group, "simpleci-job:x:%d:\n", s.gid)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "passwd"), passwd, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "group"), group, 0o644)
}

// giveTo makes dir and everything in it owned by uid:gid (symbolic links
// themselves, never their targets) and dir mode 0700.
func giveTo(dir string, uid, gid int) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// reachable checks that uid:gid may traverse every parent of dir.
func reachable(dir string, uid, gid int) error {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		m := fi.Mode().Perm()
		ok := m&0o001 != 0 || (int(st.Uid) == uid && m&0o100 != 0) || (int(st.Gid) == gid && m&0o010 != 0)
		if !ok {
			return fmt.Errorf("the job's user (uid %d) cannot reach the workspace %s: %s is mode %04o owned by %d:%d; make the workspace's parent directories traversable (e.g. 0711)", uid, dir, p, m, st.Uid, st.Gid)
		}
		if p == "/" {
			return nil
		}
	}
}

// Home is the job's HOME as the job sees it: a directory of its own,
// removed by Close. Set HOME to it.
func (s *Sandbox) Home() string { return s.home }

// TempDir is the job's private temporary directory as the job sees it:
// "/tmp" inside bubblewrap, otherwise a directory of the job's own (the
// host's /tmp is then shared with the host). Set TMPDIR to it.
func (s *Sandbox) TempDir() string {
	if s.tools != nil {
		return "/tmp"
	}
	return s.tmp
}

// Layers says which isolation layers are active.
func (s *Sandbox) Layers() Layers {
	l := s.layers
	l.Controllers = slices.Clone(l.Controllers)
	l.Namespaces = slices.Clone(l.Namespaces)
	l.Kill = slices.Clone(l.Kill)
	return l
}

// sysProcAttr is what every process of the job is started with: base's
// settings (may be nil), a new session instead of a new process group
// (the child still leads a process group whose id is its pid, as with
// Setpgid, and it has no controlling terminal), the job's credentials with
// no supplementary groups. The v2 cgroup is set at start (intoCgroup).
func (s *Sandbox) sysProcAttr(base *syscall.SysProcAttr) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{}
	if base != nil {
		*a = *base
	}
	if !a.Setpgid || a.Pgid == 0 {
		a.Setpgid, a.Pgid, a.Setsid = false, 0, true
	}
	a.Setctty, a.Noctty, a.Foreground = false, false, false
	if s.setUser {
		a.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid), Groups: []uint32{}}
	}
	a.UseCgroupFD, a.CgroupFD = false, 0
	return a
}

// intoCgroup makes a start go straight into the job's current v2 group
// (the group is replaced after a kill: see renewV2); the caller holds
// s.mu.
func (s *Sandbox) intoCgroup(a *syscall.SysProcAttr) {
	a.UseCgroupFD, a.CgroupFD = false, 0
	if s.cg != nil && s.cg.cloneInto {
		a.UseCgroupFD, a.CgroupFD = true, s.cg.v2fd
	}
}

// wrap turns a command into what is actually started: with bubblewrap,
// nsenter into the holder's namespaces, then env(1) to change directory
// and set the variables that must not reach nsenter itself.
func (s *Sandbox) wrap(dir string, env []string, name string, args []string) (path string, argv, outEnv []string, outDir string, err error) {
	if env == nil {
		env = []string{} // never the runner's environment
	}
	if dir == "" {
		dir = s.opts.Workspace
		if dir == "" {
			dir = "/"
		}
	}
	if s.tools == nil {
		path = name
		if !strings.Contains(name, "/") {
			if path, err = lookPath(name, env); err != nil {
				return "", nil, nil, "", err
			}
		}
		return path, append([]string{name}, args...), env, dir, nil
	}
	var safe, unsafe []string
	for _, kv := range env {
		if unsafeEnv(kv) {
			unsafe = append(unsafe, kv)
		} else {
			safe = append(safe, kv)
		}
	}
	argv = []string{"nsenter", "-t", "0"} // the holder's pid is set at start
	argv = append(argv, s.holderEnterFlags()...)
	argv = append(argv, "--preserve-credentials", "--", s.tools.env, "-C", dir, "--")
	argv = append(argv, unsafe...)
	argv = append(argv, name)
	argv = append(argv, args...)
	return s.tools.nsenter, argv, safe, "/", nil
}

// holderEnterFlags are nsenter's flags for the holder's namespaces, as
// found when the first holder started (every holder of a sandbox has the
// same ones, also while none runs after a Kill).
func (s *Sandbox) holderEnterFlags() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.enter)
}

// lookPath finds name in the PATH of env (or the usual directories).
func lookPath(name string, env []string) (string, error) {
	path := "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// Command returns a command that runs name with args in the sandbox, in
// dir (default: the workspace) with exactly env (nil is empty, never the
// runner's environment). It is not started: set its Stdin, Stdout and
// Stderr, then call [Sandbox.Start], not cmd.Start. The command leads a
// new session and process group; when ctx ends the whole group gets
// SIGKILL. WaitDelay is one second, so that Wait does not hang on a
// background process holding the output.
func (s *Sandbox) Command(ctx context.Context, dir string, env []string, name string, args ...string) (*exec.Cmd, error) {
	path, argv, cenv, cdir, err := s.wrap(dir, env, name, args)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Args, cmd.Env, cmd.Dir = argv, cenv, cdir
	cmd.SysProcAttr = s.sysProcAttr(nil)
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
	s.mu.Lock()
	s.cmds[cmd] = true
	s.mu.Unlock()
	return cmd, nil
}

// Start starts a command made by [Sandbox.Command] so that it is in the
// job's cgroups before it runs one instruction: it is forked by the
// sandbox's launcher thread while that thread is in the job's cgroup v1
// groups, and straight into the v2 group (clone3 with CLONE_INTO_CGROUP).
// It also resets the counters [Sandbox.Reason] reports on.
func (s *Sandbox) Start(cmd *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cmds[cmd] {
		return errors.New("sandbox: Start needs a command made by this sandbox's Command")
	}
	delete(s.cmds, cmd)
	if err := s.readyLocked(); err != nil {
		return err
	}
	if s.tools != nil {
		cmd.Args[2] = strconv.Itoa(s.holder.init)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = s.sysProcAttr(nil)
	}
	s.intoCgroup(cmd.SysProcAttr)
	s.resetCounters()
	if err := s.launch(cmd.Start); err != nil {
		return err
	}
	s.started(cmd.Process.Pid)
	return nil
}

// ForkExec is syscall.ForkExec inside the sandbox, for callers that do not
// use os/exec (the engine): argv0 and argv are the program and its
// arguments, attr.Dir, attr.Env and attr.Files are used as given (a nil
// Env is empty), and attr.Sys is kept except that Setpgid becomes Setsid
// (see [Sandbox.Command]) and the credentials and cgroup are the job's.
// The caller waits for the returned pid as usual. Like [Sandbox.Start] it
// resets the counters of [Sandbox.Reason].
func (s *Sandbox) ForkExec(argv0 string, argv []string, attr *syscall.ProcAttr) (int, error) {
	if attr == nil {
		attr = &syscall.ProcAttr{}
	}
	var args []string
	if len(argv) > 1 {
		args = argv[1:]
	}
	path, wargv, wenv, wdir, err := s.wrap(attr.Dir, attr.Env, argv0, args)
	if err != nil {
		return 0, err
	}
	a := *attr
	a.Dir, a.Env, a.Sys = wdir, wenv, s.sysProcAttr(attr.Sys)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.readyLocked(); err != nil {
		return 0, err
	}
	if s.tools != nil {
		wargv[2] = strconv.Itoa(s.holder.init)
	}
	s.intoCgroup(a.Sys)
	s.resetCounters()
	var pid int
	err = s.launch(func() error {
		var err error
		pid, err = syscall.ForkExec(path, wargv, &a)
		return err
	})
	if err != nil {
		return 0, err
	}
	s.started(pid)
	return pid, nil
}

// readyLocked checks the sandbox is open and (re)starts the holder that a
// Kill ended.
func (s *Sandbox) readyLocked() error {
	if s.closed {
		return errors.New("sandbox: closed")
	}
	if s.cg != nil && s.cg.killedV2 {
		s.cg.renewV2()
	}
	if s.tools != nil && (s.holder == nil || !s.holder.alive()) {
		h, err := s.startHolder()
		if err != nil {
			return fmt.Errorf("sandbox: restart bubblewrap: %w", err)
		}
		if !slices.Equal(h.enter, s.enter) {
			s.holder = h
			s.stopHolderLocked()
			return fmt.Errorf("sandbox: the restarted bubblewrap has namespaces %v, not %v", h.enter, s.enter)
		}
		s.holder = h
	}
	return nil
}

// launch runs start (a fork) on the launcher thread while the thread is in
// the job's v1 groups, and returns the thread to its own groups after.
func (s *Sandbox) launch(start func() error) error {
	var err error
	s.l.do(func() {
		if s.cg != nil && s.cg.v1 != nil {
			if s.origin == nil {
				origin, oerr := s.cg.origin(s.l.tid)
				if oerr != nil {
					err = fmt.Errorf("sandbox: cgroup of the launcher: %w", oerr)
					return
				}
				s.origin = origin
			}
			if err = s.cg.enter(s.l.tid); err != nil {
				err = fmt.Errorf("sandbox: enter the job's cgroup: %w", err)
				return
			}
			defer func() {
				if lerr := s.origin.AddTask(cgroup1.Process{Pid: s.l.tid}); lerr != nil {
					s.log.Error("sandbox: the launcher thread could not leave the job's cgroup", "err", lerr)
				}
			}()
		}
		markInheritedCloseOnExec()
		err = start()
	})
	return err
}

// started records a started process: its group (for the floor) and, when
// forks do not go straight into it, its v2 group.
func (s *Sandbox) started(pid int) {
	s.pgids = append(s.pgids, pid)
	if err := s.cg.addProcIfAny(pid); err != nil {
		s.log.Warn("sandbox: add to the v2 cgroup", "pid", pid, "err", err)
	}
}

func (c *jobCgroups) addProcIfAny(pid int) error {
	if c == nil {
		return nil
	}
	return c.addProc(pid)
}

func (s *Sandbox) resetCounters() {
	if s.cg != nil {
		s.snap = s.cg.read()
	}
}

// Reason says why processes of the job died since the last
// [Sandbox.Start] or [Sandbox.ForkExec], when the kernel says so:
// "memory limit (64 MiB) exceeded: the kernel killed 1 process" (the OOM
// killer of the job's memory cgroup), "pids limit (64) reached: 12 forks
// refused". "" when the kernel reported nothing (or there are no cgroups).
func (s *Sandbox) Reason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cg == nil {
		return ""
	}
	now := s.cg.read()
	var parts []string
	if n := now.oomKills - s.snap.oomKills; n > 0 {
		limit := "memory limit"
		if s.opts.Memory > 0 {
			limit = fmt.Sprintf("memory limit (%s)", formatBytes(s.opts.Memory))
		}
		parts = append(parts, fmt.Sprintf("%s exceeded: the kernel killed %d %s", limit, n, plural(n, "process", "processes")))
	}
	if n := now.pidsMax - s.snap.pidsMax; n > 0 {
		parts = append(parts, fmt.Sprintf("pids limit (%d) reached: %d %s refused", s.opts.Pids, n, plural(n, "fork", "forks")))
	}
	return strings.Join(parts, "; ")
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// formatBytes is n in the largest binary unit that divides it, or MB-ish.
func formatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// killTimeout bounds Kill's wait for the processes to disappear.
const killTimeout = 5 * time.Second

// Kill kills every process of the job, including those that called setsid
// or double-forked, with every means the sandbox has: cgroup.kill (v2),
// freeze and SIGKILL every process of the v1 group until it is empty,
// kill(-1) as the job's user (when the groups do not hold the whole job:
// see jobCgroups.confines), the death of the job's PID namespace and,
// as the floor, SIGKILL to the process groups the sandbox started. It
// returns once none is left (zombies aside: their parents reap them), or
// an error after 5 seconds. The sandbox stays usable: the next command
// gets a new PID namespace.
func (s *Sandbox) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	return s.killLocked()
}

func (s *Sandbox) killLocked() error {
	deadline := time.Now().Add(killTimeout)
	var errs []error
	if s.cg != nil {
		if err := s.cg.kill(deadline); err != nil {
			errs = append(errs, err)
		}
	}
	if s.setUser && !s.cg.confines() {
		// The layer that does not depend on cgroups. Groups that confine
		// the job leave nothing for it to find (the job cannot leave them),
		// and it reads the status of every process of the machine (~40 µs
		// each), so it runs only without them.
		var zombiesSince time.Time
		for left := processesOf(s.uid); !settled(left, &zombiesSince); left = processesOf(s.uid) {
			if slices.ContainsFunc(left, alive) {
				if err := killUID(s.uid, s.gid); err != nil {
					errs = append(errs, err)
					break
				}
			} // else only zombies that their parents have yet to reap
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("processes %v of uid %d survive SIGKILL", left, s.uid))
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.stopHolderLocked()
	for _, g := range s.pgids {
		_ = syscall.Kill(-g, syscall.SIGKILL)
	}
	if s.setUser && isSubreaper() {
		s.reapOrphans()
	}
	s.pgids = nil
	return errors.Join(errs...)
}

// isSubreaper reports whether orphans are re-parented to the runner.
func isSubreaper() bool {
	var v int32
	_, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&v)), 0)
	return e == 0 && v != 0
}

// reapOrphans collects the exit status of the job's processes that were
// re-parented to the runner (a child subreaper, as the engine makes it)
// and are now zombies, so that they do not pile up in the runner and
// their pids are released. The processes the sandbox started are left to
// their caller's wait.
func (s *Sandbox) reapOrphans() {
	for _, pid := range runnerChildren() {
		if slices.Contains(s.pgids, pid) {
			continue
		}
		if state, _, ok := procStat(pid); !ok || state != 'Z' {
			continue
		}
		if uids, _ := procUIDs(strconv.Itoa(pid)); len(uids) == 0 || uids[0] != s.uid {
			continue
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// runnerChildren lists the runner's child processes: those of each of its
// threads (/proc/self/task/TID/children; orphans are re-parented to one of
// them), or, on a kernel without that file, every process whose parent is
// the runner.
func runnerChildren() []int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err == nil && len(tasks) > 0 {
		if _, err = os.Stat("/proc/self/task/" + tasks[0].Name() + "/children"); err == nil {
			var out []int
			for _, t := range tasks {
				out = append(out, readPids("/proc/self/task/"+t.Name()+"/children")...)
			}
			return out
		}
	}
	me := os.Getpid()
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(pid); ok && ppid == me {
			out = append(out, pid)
		}
	}
	return out
}

// stopHolderLocked kills the holder (and so the job's PID namespace) and
// waits for it.
func (s *Sandbox) stopHolderLocked() {
	h := s.holder
	if h == nil {
		return
	}
	s.holder = nil
	_ = h.cmd.Process.Kill()
	select {
	case <-h.done:
	case <-time.After(killTimeout):
		s.log.Warn("sandbox: bwrap did not exit after SIGKILL", "pid", h.cmd.Process.Pid)
	}
}

// Close kills the job's processes, removes its cgroups and its state (HOME,
// private /tmp) and releases its uid. The workspace is left to the caller
// (owned by the job's user; root can remove it).
func (s *Sandbox) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	err := s.killLocked()
	s.closed = true
	if err == nil && s.setUser && s.uidLock != nil {
		// No process of the uid is left: the next holder need not look.
		if merr := markUID(s.uidLock, uidClean); merr != nil {
			s.log.Warn("sandbox: mark the uid clean", "uid", s.uid, "err", merr)
		}
	}
	s.mu.Unlock()
	if serr := s.slirp.stop(); serr != nil {
		err = errors.Join(err, serr)
	}
	s.slirp = nil
	if s.cg != nil {
		if derr := s.cg.delete(); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	s.release()
	return err
}

// release ends the launcher thread and removes what New made.
func (s *Sandbox) release() {
	if s.holder != nil {
		s.stopHolderLocked()
	}
	if s.cg != nil && !s.closed {
		_ = s.cg.kill(time.Now().Add(killTimeout))
		_ = s.cg.delete()
	}
	if err := s.slirp.stop(); err != nil {
		s.log.Warn("sandbox: stop slirp4netns", "err", err)
	}
	s.slirp = nil
	if s.l != nil {
		s.l.stop()
		s.l = nil
	}
	if s.setUser && s.tools == nil && s.closed {
		s.removeLeftovers()
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			s.log.Warn("sandbox: remove state", "dir", s.dir, "err", err)
		}
	}
	if s.uidLock != nil {
		// The file stays: see allocateUID.
		s.uidLock.Close()
		s.uidLock = nil
	}
	if s.lock != nil {
		os.Remove(s.lock.Name())
		s.lock.Close()
		s.lock = nil
	}
}

// removeLeftovers removes what the job (without bubblewrap, so on the
// host's filesystem) left in the world-writable directories, so that a
// later job that gets the same uid finds nothing of it. The job's
// processes are dead: nothing can swap a file for a link meanwhile.
func (s *Sandbox) removeLeftovers() {
	for _, dir := range []string{os.TempDir(), "/tmp", "/var/tmp", "/dev/shm"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == s.uid {
				if err := os.RemoveAll(p); err != nil {
					s.log.Warn("sandbox: remove a file the job left", "path", p, "err", err)
				}
			}
		}
	}
}

// probe runs a command through the sandbox that reports its credentials
// and namespaces, and derives the Layers from what it saw.
func (s *Sandbox) probe() (Layers, error) {
	l := Layers{UID: s.uid, GID: s.gid, User: s.setUser, FS: "host"}
	// The shell reads its status with a builtin; one readlink prints the
	// namespaces ("net:[4026532179]", ...), which are the shell's.
	script := `while read -r k v rest; do case $k in Uid:|CapEff:|NoNewPrivs:) echo "$k $v";; esac; done </proc/self/status
exec readlink /proc/self/ns/user /proc/self/ns/mnt /proc/self/ns/pid /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts /proc/self/ns/cgroup`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, err := s.Command(ctx, "/", []string{"PATH=/usr/bin:/bin"}, shellPath, "-c", script)
	if err != nil {
		return l, err
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := s.Start(cmd); err != nil {
		return l, err
	}
	if err := cmd.Wait(); err != nil {
		return l, fmt.Errorf("%v: %s", err, strings.TrimSpace(errOut.String()))
	}
	nsNames := map[string]string{"user": "user", "mnt": "mount", "pid": "pid", "net": "net", "ipc": "ipc", "uts": "uts", "cgroup": "cgroup"}
	seen := map[string]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Uid:":
			if u, err := strconv.Atoi(f[1]); err == nil && s.setUser && u != s.uid {
				return l, fmt.Errorf("the probe ran as uid %d, not %d", u, s.uid)
			}
		case len(f) == 2 && f[0] == "CapEff:":
			l.NoCaps = strings.Trim(f[1], "0") == ""
		case len(f) == 2 && f[0] == "NoNewPrivs:":
			l.NoNewPrivs = f[1] == "1"
		case len(f) == 1 && strings.HasSuffix(f[0], "]"):
			kind, _, _ := strings.Cut(f[0], ":")
			if _, ok := nsNames[kind]; !ok {
				continue
			}
			seen[kind] = true
			mine, _ := os.Readlink("/proc/self/ns/" + kind)
			if mine != "" && f[0] != mine {
				l.Namespaces = append(l.Namespaces, nsNames[kind])
			}
		}
	}
	if len(seen) == 0 {
		return l, fmt.Errorf("the probe printed nothing useful: %q %q", out.String(), errOut.String())
	}
	switch {
	case !slices.Contains(l.Namespaces, "net"):
		l.Net = "host"
	case s.slirp != nil:
		l.Net = "slirp4netns+filter"
	default:
		l.Net = "loopback"
	}
	if s.tools != nil {
		if !slices.Contains(l.Namespaces, "mount") || !slices.Contains(l.Namespaces, "pid") {
			return l, fmt.Errorf("the probe shares the runner's mount or pid namespace: %v", l.Namespaces)
		}
		l.FS = "bubblewrap"
	}
	if s.cg != nil {
		l.Cgroup, l.Controllers = s.cg.version(), s.cg.controllers()
		if s.cg.canKillV2() {
			l.Kill = append(l.Kill, "cgroup.kill")
		}
		if s.cg.v1 != nil || !s.cg.canKillV2() {
			l.Kill = append(l.Kill, "cgroup")
		}
	}
	if s.setUser && !s.cg.confines() {
		l.Kill = append(l.Kill, "uid")
	}
	if s.tools != nil {
		l.Kill = append(l.Kill, "pid namespace")
	}
	l.Kill = append(l.Kill, "process groups")
	return l, nil
}
