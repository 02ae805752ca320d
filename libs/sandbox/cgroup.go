package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// parentGroup is the cgroup, under the runner's own in each hierarchy,
// that holds one group per job.
const parentGroup = "simpleci"

// cfsPeriod is the CPU quota period, in microseconds.
const cfsPeriod = 100000

// v1Wanted are the cgroup v1 controllers a job gets, when mounted.
var v1Wanted = []cgroup1.Name{cgroup1.Memory, cgroup1.Pids, cgroup1.Cpu, cgroup1.Freezer}

// jobCgroups is one job's cgroups: v1 groups (the limits, on machines
// whose controllers are on v1), a v2 group (tracking, cgroup.kill and,
// where the controllers are on v2, the limits), or both.
type jobCgroups struct {
	name string
	// v1 is nil when there is no usable v1 hierarchy.
	v1      cgroup1.Cgroup
	v1Dirs  map[cgroup1.Name]string // absolute directory per controller
	v1Hier  cgroup1.Hierarchy
	v2      *cgroup2.Manager
	v2Mount string
	v2Group string // relative to v2Mount
	v2Dir   string
	v2Ctrls []string // controllers enabled for the group
	// v2fd is an open descriptor of v2Dir, for clone3(CLONE_INTO_CGROUP);
	// -1 when there is no v2 group.
	v2fd int
	// cloneInto is true while forks go straight into the v2 group.
	cloneInto bool
	// killedV2 is set by a kill through cgroup.kill while forks go
	// straight into the group: see renewV2.
	killedV2 bool
	limits   Limits
	memsw    bool
}

// newJobCgroups makes the job's groups with the limits and returns nil,
// with the reasons in notes, when the machine allows none.
func newJobCgroups(name string, lim Limits) (c *jobCgroups, notes []string) {
	c = &jobCgroups{name: name, limits: lim, v2fd: -1}
	if err := c.makeV1(); err != nil {
		notes = append(notes, "cgroup v1: "+err.Error())
	}
	if err := c.makeV2(); err != nil {
		notes = append(notes, "cgroup v2: "+err.Error())
	}
	if c.v1 == nil && c.v2 == nil {
		return nil, notes
	}
	return c, notes
}

// v1Hierarchy lists the mounted v1 controllers among want.
func v1Hierarchy(want []cgroup1.Name) cgroup1.Hierarchy {
	return func() ([]cgroup1.Subsystem, error) {
		all, err := cgroup1.Default()
		if err != nil {
			return nil, err
		}
		var out []cgroup1.Subsystem
		for _, s := range all {
			if !slices.Contains(want, s.Name()) {
				continue
			}
			if s.Name() == cgroup1.Memory {
				if p, ok := s.(interface{ Path(string) string }); ok {
					s = cgroup1.NewMemory(filepath.Dir(p.Path("/")), cgroup1.OptionalSwap())
				}
			}
			out = append(out, s)
		}
		if len(out) == 0 {
			return nil, errors.New("no controller mounted")
		}
		return out, nil
	}
}

func (c *jobCgroups) v1Resources(names []cgroup1.Name) *specs.LinuxResources {
	r := &specs.LinuxResources{}
	if c.limits.Memory > 0 && slices.Contains(names, cgroup1.Memory) {
		m := c.limits.Memory
		r.Memory = &specs.LinuxMemory{Limit: &m}
		if c.memsw {
			sw := m // memory + swap: no swap on top of the limit
			r.Memory.Swap = &sw
		}
	}
	if c.limits.Pids > 0 && slices.Contains(names, cgroup1.Pids) {
		p := c.limits.Pids
		r.Pids = &specs.LinuxPids{Limit: &p}
	}
	if c.limits.CPU > 0 && slices.Contains(names, cgroup1.Cpu) {
		q, p := int64(c.limits.CPU*cfsPeriod), uint64(cfsPeriod)
		r.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	return r
}

func (c *jobCgroups) makeV1() error {
	subs, err := v1Hierarchy(v1Wanted)()
	if err != nil {
		return err
	}
	var names []cgroup1.Name
	for _, s := range subs {
		names = append(names, s.Name())
		if s.Name() == cgroup1.Memory {
			p := s.(interface{ Path(string) string }).Path("/")
			_, err := os.Stat(filepath.Join(p, "memory.memsw.limit_in_bytes"))
			c.memsw = err == nil
		}
	}
	path := cgroup1.NestedPath(filepath.Join(parentGroup, c.name))
	cg, err := cgroup1.New(path, c.v1Resources(names), cgroup1.WithHierarchy(v1Hierarchy(names)))
	if err != nil {
		// Keep the controllers that work on their own.
		var ok []cgroup1.Name
		var errs []string
		for _, n := range names {
			if _, err := cgroup1.New(path, c.v1Resources([]cgroup1.Name{n}), cgroup1.WithHierarchy(v1Hierarchy([]cgroup1.Name{n}))); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", n, err))
				continue
			}
			ok = append(ok, n)
		}
		if len(ok) == 0 {
			return errors.New(strings.Join(errs, "; "))
		}
		names = ok
		if cg, err = cgroup1.New(path, c.v1Resources(names), cgroup1.WithHierarchy(v1Hierarchy(names))); err != nil {
			return err
		}
	}
	c.v1, c.v1Hier = cg, v1Hierarchy(names)
	c.v1Dirs = map[cgroup1.Name]string{}
	for _, s := range cg.Subsystems() {
		p, ok := s.(interface{ Path(string) string })
		if !ok {
			continue
		}
		rel, err := path(s.Name())
		if err != nil {
			continue
		}
		c.v1Dirs[s.Name()] = p.Path(rel)
	}
	return nil
}

// v2Mount is where the cgroup v2 hierarchy is mounted, "" when it is not.
func v2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4]
			}
		}
	}
	return ""
}

// v2Parent is the directory under which the job groups are made in v2.
func v2Parent() (mount, group string, err error) {
	mount = v2Mount()
	if mount == "" {
		return "", "", errors.New("not mounted")
	}
	own, err := cgroup2.NestedGroupPath("")
	if err != nil {
		return "", "", err
	}
	return mount, filepath.Join(own, parentGroup), nil
}

func (c *jobCgroups) makeV2() error {
	mount, parent, err := v2Parent()
	if err != nil {
		return err
	}
	c.v2Mount, c.v2Group = mount, filepath.Join(parent, c.name)
	return c.createV2()
}

// createV2 makes the v2 group, with the limits that the v1 groups do not
// already hold where v2 has the controller, and opens it for clone3.
func (c *jobCgroups) createV2() error {
	m, err := cgroup2.NewManager(c.v2Mount, c.v2Group, &cgroup2.Resources{})
	if err != nil {
		return err
	}
	c.v2, c.v2Dir, c.v2Ctrls = m, filepath.Join(c.v2Mount, c.v2Group), nil
	var want []string
	res := &cgroup2.Resources{}
	if c.limits.Memory > 0 && !c.hasV1(cgroup1.Memory) {
		want = append(want, "memory")
		max, swap := c.limits.Memory, int64(0)
		res.Memory = &cgroup2.Memory{Max: &max, Swap: &swap}
	}
	if c.limits.Pids > 0 && !c.hasV1(cgroup1.Pids) {
		want = append(want, "pids")
		res.Pids = &cgroup2.Pids{Max: c.limits.Pids}
	}
	if c.limits.CPU > 0 && !c.hasV1(cgroup1.Cpu) {
		want = append(want, "cpu")
		q, p := int64(c.limits.CPU*cfsPeriod), uint64(cfsPeriod)
		res.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&q, &p)}
	}
	if root, err := m.RootControllers(); err == nil && len(want) > 0 {
		var avail []string
		for _, w := range want {
			if slices.Contains(root, w) {
				avail = append(avail, w)
			}
		}
		if len(avail) > 0 {
			if err := m.ToggleControllers(avail, cgroup2.Enable); err == nil {
				if err := m.Update(res); err == nil {
					c.v2Ctrls = avail
				}
			}
		}
	}
	fd, err := unix.Open(c.v2Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		c.v2fd, c.cloneInto = fd, true
	}
	return nil
}

// renewV2 replaces the v2 group, empty after a kill, by a new one. On
// Linux 6.18 (seen here) a group that was killed through cgroup.kill
// SIGKILLs every process cloned into it afterwards (clone3 with
// CLONE_INTO_CGROUP), so the next command would die at once. When the old
// group cannot be removed, processes are moved into it after they start
// instead (which the bug does not touch).
func (c *jobCgroups) renewV2() {
	c.killedV2 = false
	if c.v2fd >= 0 {
		unix.Close(c.v2fd)
		c.v2fd, c.cloneInto = -1, false
	}
	if err := c.v2.Delete(); err != nil {
		return
	}
	if err := c.createV2(); err != nil {
		c.v2 = nil
	}
}

func (c *jobCgroups) hasV1(n cgroup1.Name) bool {
	_, ok := c.v1Dirs[n]
	return ok
}

// version is "v1", "v2" or "v1+v2".
func (c *jobCgroups) version() string {
	switch {
	case c.v1 != nil && c.v2 != nil:
		return "v1+v2"
	case c.v1 != nil:
		return "v1"
	default:
		return "v2"
	}
}

// controllers lists the controllers of the job's groups, in a fixed order.
func (c *jobCgroups) controllers() []string {
	var out []string
	for _, n := range []string{"memory", "pids", "cpu", "freezer"} {
		if c.hasV1(cgroup1.Name(n)) || slices.Contains(c.v2Ctrls, n) {
			out = append(out, n)
		}
	}
	return out
}

// confines reports whether the groups hold every process of the job, so
// that killing them leaves none: each process is born in them (v1: the
// launcher thread forks from inside them; v2: clone3 with
// CLONE_INTO_CGROUP) and the job's user cannot move out of them.
func (c *jobCgroups) confines() bool {
	return c != nil && (c.v1 != nil || (c.v2 != nil && c.cloneInto))
}

// canKillV2 is true when the v2 group has cgroup.kill (Linux 5.14+).
func (c *jobCgroups) canKillV2() bool {
	if c.v2 == nil {
		return false
	}
	_, err := os.Stat(filepath.Join(c.v2Dir, "cgroup.kill"))
	return err == nil
}

// enter moves thread tid into the v1 groups (v2 membership is per process
// and done by clone3 instead).
func (c *jobCgroups) enter(tid int) error {
	if c.v1 == nil {
		return nil
	}
	return c.v1.AddTask(cgroup1.Process{Pid: tid})
}

// origin is where thread tid is now in the v1 hierarchies, to return it
// there after a fork.
func (c *jobCgroups) origin(tid int) (cgroup1.Cgroup, error) {
	if c.v1 == nil {
		return nil, nil
	}
	return cgroup1.Load(cgroup1.PidPath(tid), cgroup1.WithHierarchy(c.v1Hier))
}

// addProc puts a started process into the v2 group, when forks do not go
// there directly.
func (c *jobCgroups) addProc(pid int) error {
	if c.v2 == nil || c.cloneInto {
		return nil
	}
	return c.v2.AddProc(uint64(pid))
}

// counters are the kernel's event counts that explain deaths.
type counters struct {
	oomKills uint64 // processes the OOM killer killed in the group
	pidsMax  uint64 // forks refused at the pids limit
}

func (c *jobCgroups) read() counters {
	var k counters
	if d, ok := c.v1Dirs[cgroup1.Memory]; ok {
		k.oomKills = readKV(filepath.Join(d, "memory.oom_control"))["oom_kill"]
	} else if slices.Contains(c.v2Ctrls, "memory") {
		k.oomKills = readKV(filepath.Join(c.v2Dir, "memory.events"))["oom_kill"]
	}
	if d, ok := c.v1Dirs[cgroup1.Pids]; ok {
		k.pidsMax = readKV(filepath.Join(d, "pids.events"))["max"]
	} else if slices.Contains(c.v2Ctrls, "pids") {
		k.pidsMax = readKV(filepath.Join(c.v2Dir, "pids.events"))["max"]
	}
	return k
}

// procs lists the processes of the job's groups that Kill waits for (see
// pending), the runner excluded.
func (c *jobCgroups) procs() []int {
	seen := map[int]bool{}
	var out []int
	add := func(file string) {
		for _, p := range readPids(file) {
			if !seen[p] && p != os.Getpid() && pending(p) {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	for _, d := range c.v1Dirs {
		add(filepath.Join(d, "cgroup.procs"))
	}
	if c.v2 != nil {
		add(filepath.Join(c.v2Dir, "cgroup.procs"))
	}
	return out
}

// kill kills every process of the groups and waits until they are gone or
// until deadline.
func (c *jobCgroups) kill(deadline time.Time) error {
	var zombiesSince time.Time
	for {
		if c.canKillV2() {
			if err := c.v2.Kill(); err != nil {
				return err
			}
			c.killedV2 = c.cloneInto
		}
		if c.v1 != nil {
			c.killV1Once()
		} else {
			// v2 without cgroup.kill (Linux < 5.14): one by one.
			for _, p := range c.procs() {
				_ = unix.Kill(p, unix.SIGKILL)
			}
		}
		if settled(c.procs(), &zombiesSince) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", c.name, c.procs())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// killV1Once freezes the v1 group (when it has the freezer), sends SIGKILL
// to each process in it, and thaws it, so that no process forks between
// the listing and the kill.
func (c *jobCgroups) killV1Once() {
	fz, hasFreezer := c.v1Dirs[cgroup1.Freezer]
	if hasFreezer {
		freeze(fz, "FROZEN", 100*time.Millisecond)
	}
	for _, p := range c.procs() {
		_ = unix.Kill(p, unix.SIGKILL)
	}
	if hasFreezer {
		freeze(fz, "THAWED", time.Second)
	}
}

// freeze writes a freezer state and waits, at most for wait, until the
// group reaches it. (The library's Freeze waits forever.)
func freeze(dir, state string, wait time.Duration) bool {
	file := filepath.Join(dir, "freezer.state")
	end := time.Now().Add(wait)
	for {
		if err := os.WriteFile(file, []byte(state), 0); err != nil {
			return false
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		if strings.TrimSpace(string(b)) == state {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// delete removes the groups; they must be empty.
func (c *jobCgroups) delete() error {
	var errs []error
	deadline := time.Now().Add(2 * time.Second)
	for _, rm := range []func() error{
		func() error {
			if c.v1 == nil {
				return nil
			}
			return c.v1.Delete()
		},
		func() error {
			if c.v2 == nil {
				return nil
			}
			return c.v2.Delete()
		},
	} {
		for {
			err := rm()
			if err == nil || errors.Is(err, cgroup1.ErrCgroupDeleted) || errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, err)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if c.v2fd >= 0 {
		unix.Close(c.v2fd)
		c.v2fd = -1
	}
	return errors.Join(errs...)
}

// loadJobCgroups finds the groups of a job by name (for CleanupStale).
func loadJobCgroups(name string, v1Names []cgroup1.Name) *jobCgroups {
	c := &jobCgroups{name: name, v2fd: -1, v1Dirs: map[cgroup1.Name]string{}}
	if len(v1Names) > 0 {
		path := cgroup1.NestedPath(filepath.Join(parentGroup, name))
		h := v1Hierarchy(v1Names)
		if cg, err := cgroup1.Load(path, cgroup1.WithHierarchy(h)); err == nil {
			c.v1, c.v1Hier = cg, h
			for _, s := range cg.Subsystems() {
				p, ok := s.(interface{ Path(string) string })
				if !ok {
					continue
				}
				if rel, err := path(s.Name()); err == nil {
					c.v1Dirs[s.Name()] = p.Path(rel)
				}
			}
		}
	}
	if mount, parent, err := v2Parent(); err == nil {
		dir := filepath.Join(mount, parent, name)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			if m, err := cgroup2.Load(filepath.Join(parent, name), cgroup2.WithMountpoint(mount)); err == nil {
				c.v2, c.v2Dir = m, dir
			}
		}
	}
	return c
}

// staleGroupNames lists the job groups under the parent group in every
// hierarchy, and the v1 controllers that exist.
func staleGroupNames() (names []string, v1Names []cgroup1.Name) {
	seen := map[string]bool{}
	list := func(dir string) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() && !seen[e.Name()] {
				seen[e.Name()] = true
				names = append(names, e.Name())
			}
		}
	}
	if subs, err := v1Hierarchy(v1Wanted)(); err == nil {
		path := cgroup1.NestedPath(parentGroup)
		for _, s := range subs {
			v1Names = append(v1Names, s.Name())
			p, ok := s.(interface{ Path(string) string })
			if !ok {
				continue
			}
			if rel, err := path(s.Name()); err == nil {
				list(p.Path(rel))
			}
		}
	}
	if mount, parent, err := v2Parent(); err == nil {
		list(filepath.Join(mount, parent))
	}
	return names, v1Names
}

func readKV(file string) map[string]uint64 {
	out := map[string]uint64{}
	b, err := os.ReadFile(file)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

func readPids(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// procStat returns the state letter and the parent of pid; ok is false
// when pid does not exist.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) S ppid ...: comm may contain anything, so look after the
	// last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// zombieWait is how long Kill waits for other processes to reap the job's
// zombies (which still count against its pids limit) once none of its
// processes runs. A runner that is a child subreaper (as the engine makes
// it) gets its orphans' zombies and reaps them at once.
const zombieWait = 250 * time.Millisecond

// settled reports whether Kill may stop waiting for left: it is empty, or
// it holds only zombies and has for zombieWait (since records when that
// began).
func settled(left []int, since *time.Time) bool {
	if len(left) == 0 {
		return true
	}
	if slices.ContainsFunc(left, alive) {
		*since = time.Time{}
		return false
	}
	if since.IsZero() {
		*since = time.Now()
	}
	return time.Since(*since) >= zombieWait
}

// pending reports whether Kill must still wait for pid: it runs, or it is
// a zombie that a process other than the runner will reap (until then its
// pid still counts against the job's pids limit). A zombie of the runner
// is the runner's to reap.
func pending(pid int) bool {
	state, ppid, ok := procStat(pid)
	if !ok {
		return false
	}
	if state == 'Z' || state == 'X' {
		return ppid != os.Getpid()
	}
	return true
}
