package engine

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

var prepareOnce sync.Once

// prepareProcess makes the calling process a child subreaper and marks
// the descriptors it inherited close-on-exec. Both are process-wide and
// done once.
func prepareProcess() {
	prepareOnce.Do(func() {
		// PR_SET_CHILD_SUBREAPER = 36. Failure is not fatal: orphans are
		// then re-parented to PID 1 and only their reaping is lost.
		_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 36, 1, 0)
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return
		}
		for _, e := range entries {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				syscall.CloseOnExec(fd)
			}
		}
	})
}

type commandResult struct {
	exitCode int
	signal   string // set when killed by a signal
	stopped  bool   // the engine stopped it (timeout or cancel)
}

// Reading a command's output.
//
// A program's stdio writes a pipe in 4 KiB pieces. Woken for each, a
// reader costs the writer and itself a context switch per 4 KiB, which
// doubles the CPU time of a chatty step. So at a stream's first sizeable
// read its pipe is enlarged to pipeSize and, after each read that took a
// sizeable load and emptied the pipe, the reader naps for batchNap while
// the pipe fills: output comes out at most batchNap later, a producer of
// up to pipeSize per batchNap never waits, and the wake-ups drop from one
// per 4 KiB to about one per millisecond.
//
// One loop in the calling goroutine waits in ppoll for both pipes and for
// the command's exit (a pidfd), so a command costs no goroutine, no
// thread hand-off and no registration with Go's poller (whose epoll
// would wake a thread for every write).
const (
	// readBufSize is how much one read takes.
	readBufSize = 64 << 10
	// pipeSize is what the engine asks for with F_SETPIPE_SZ (the
	// default limit for unprivileged processes, pipe-max-size).
	pipeSize = 1 << 20
	// napMin is the smallest read after which the reader naps: smaller
	// reads are interactive output, which gets no delay.
	napMin = 4 << 10
	// batchNap is how long the reader naps; at 1 GB/s a producer fills
	// under a megabyte meanwhile.
	batchNap = time.Millisecond
	// maxPollSlice bounds a wait for the command's exit where there is no
	// pidfd (Linux before 5.3): the loop then checks with wait4 after
	// 1 ms, 2 ms, ... up to this.
	maxPollSlice = 50 * time.Millisecond
)

// commandIO is what the commands of a job share, made once per job: stdin
// (/dev/null), the output collector and the read buffer.
type commandIO struct {
	devNull int
	out     *stepOutput
	buf     []byte
}

// commandIO returns the job's commandIO, made on first use.
func (r *jobRun) commandIO() (*commandIO, error) {
	if r.cio != nil {
		return r.cio, nil
	}
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	r.cio = &commandIO{devNull: fd, out: r.em.newStepOutput(r.masks), buf: make([]byte, readBufSize)}
	return r.cio, nil
}

// releaseIO closes what commandIO made; the job is over.
func (r *jobRun) releaseIO() {
	if r.cio != nil {
		syscall.Close(r.cio.devNull)
		r.cio.out.stop()
		r.cio = nil
	}
}

// outputPipe makes a pipe for a command's stdout or stderr: the read end
// non-blocking, the write end blocking, for the child.
func outputPipe() (rd, wr int, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	// A fresh read end has no other status flags to keep.
	if _, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(p[0]), syscall.F_SETFL, syscall.O_NONBLOCK); errno != 0 {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return -1, -1, os.NewSyscallError("fcntl", errno)
	}
	return p[0], p[1], nil
}

// Linux constants missing from package syscall.
const (
	fSetPipeSize   = 1031 // F_SETPIPE_SZ
	sysPidfdOpen   = 434  // pidfd_open(2), the same number on every architecture
	pollIn         = 0x1
	pollErrHupNval = 0x8 | 0x10 | 0x20 // POLLERR | POLLHUP | POLLNVAL
)

// pollFd is struct pollfd.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

// ppoll waits for events on fds, at most d (forever when d < 0). It
// blocks its thread, not Go's poller.
func ppoll(fds []pollFd, d time.Duration) {
	var ts *syscall.Timespec
	if d >= 0 {
		t := syscall.NsecToTimespec(int64(d))
		ts = &t
	}
	var p *pollFd
	if len(fds) > 0 {
		p = &fds[0]
	}
	_, _, _ = syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(p)), uintptr(len(fds)), uintptr(unsafe.Pointer(ts)), 0, 0, 0)
}

// commandOutput is the loop that reads a running command's output and
// notices its exit.
type commandOutput struct {
	fds [2]int // read ends, -1 once at their end
	// grown is set once a stream's pipe was asked to grow (at its first
	// sizeable read, so that quiet commands do not pay for it); big once
	// it got pipeSize.
	grown, big [2]bool
	buf        []byte
	out        *stepOutput
	pidfd      int // -1 without pidfd_open
	pid        int
	status     syscall.WaitStatus
	waitErr    error
	exited     bool
	// onExit is called once the command's leader has been reaped.
	onExit func()
}

// run reads both streams until both are at their end and the command's
// leader has exited, or until WaitDelay after the leader's exit
// (background processes that keep a pipe open), whichever comes first.
func (c *commandOutput) run() {
	var deadline time.Time
	slice := time.Millisecond // without pidfd
	for {
		var set [3]pollFd
		var which [3]int // stream of set[i], or -1 for the pidfd
		n := 0
		for s, fd := range c.fds {
			if fd >= 0 {
				set[n], which[n] = pollFd{fd: int32(fd), events: pollIn}, s
				n++
			}
		}
		wait := time.Duration(-1)
		switch {
		case c.exited:
			if n == 0 {
				return
			}
			if wait = time.Until(deadline); wait <= 0 {
				return
			}
		case c.pidfd >= 0:
			set[n], which[n] = pollFd{fd: int32(c.pidfd), events: pollIn}, -1
			n++
		default:
			wait, slice = slice, min(2*slice, maxPollSlice)
		}
		ppoll(set[:n], wait)
		nap := false
		for i := range n {
			if set[i].revents&(pollIn|pollErrHupNval) == 0 || which[i] < 0 {
				continue
			}
			nap = c.drain(which[i]) || nap
		}
		if !c.exited && c.reap() {
			deadline = time.Now().Add(WaitDelay)
			c.onExit()
		}
		if nap {
			time.Sleep(batchNap)
		}
	}
}

// maxDrain bounds the reads of one drain, so that the loop checks its
// deadline also while a background process keeps a pipe full.
const maxDrain = 16

// drain reads what a stream holds. It reports whether the reads were a
// bulk producer's, worth a nap to batch.
func (c *commandOutput) drain(s int) (nap bool) {
	for range maxDrain {
		n, err := syscall.Read(c.fds[s], c.buf)
		switch {
		case n > 0:
			c.out.write(s, c.buf[:n])
			if n >= napMin && !c.grown[s] {
				// F_SETPIPE_SZ fails beyond the user's pipe quota; the
				// pipe then keeps its size and the reader does not nap.
				c.grown[s] = true
				size, _, errno := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(c.fds[s]), fSetPipeSize, pipeSize)
				c.big[s] = errno == 0 && size >= pipeSize
			}
			if n < len(c.buf) {
				return c.big[s] && n >= napMin
			}
		case err == syscall.EAGAIN:
			return false
		case err == syscall.EINTR:
		default: // the end (n == 0) or an error
			syscall.Close(c.fds[s])
			c.fds[s] = -1
			return false
		}
	}
	return false
}

// reap collects the leader's exit status if it has exited.
func (c *commandOutput) reap() bool {
	for {
		pid, err := syscall.Wait4(c.pid, &c.status, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			c.waitErr = err
		case pid == 0:
			return false
		}
		c.exited = true
		return true
	}
}

// close releases the descriptors still open.
func (c *commandOutput) close() {
	for s, fd := range c.fds {
		if fd >= 0 {
			syscall.Close(fd)
			c.fds[s] = -1
		}
	}
	if c.pidfd >= 0 {
		syscall.Close(c.pidfd)
	}
}

// usePidfd is cleared by tests of the loop without a pidfd.
var usePidfd = true

// shell is the interpreter of every command.
const shell = "/bin/sh"

// runCommand runs one command of a step in its own process group and
// stops the group when ctx ends. The error is non-nil only when the
// command could not be started.
//
// It uses syscall.ForkExec and one ppoll loop rather than os/exec: per
// command that saves opening /dev/null, two 32 KiB copy buffers,
// registering the pipes with Go's poller and three goroutines, which was
// most of the engine's own cost per step.
func (r *jobRun) runCommand(ctx context.Context, step int, script, dir string, env []string) (commandResult, error) {
	cio, err := r.commandIO()
	if err != nil {
		return commandResult{exitCode: -1}, err
	}
	c := &commandOutput{buf: cio.buf, out: cio.out, pidfd: -1}
	var wrs [2]int
	for s := range c.fds {
		if c.fds[s], wrs[s], err = outputPipe(); err != nil {
			for o := range s {
				syscall.Close(c.fds[o])
				syscall.Close(wrs[o])
			}
			return commandResult{exitCode: -1}, err
		}
	}
	forkExec := syscall.ForkExec
	if r.job.Sandbox != nil {
		forkExec = r.job.Sandbox.ForkExec
	}
	pid, err := forkExec(shell, []string{shell, "-e", "-c", script}, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{uintptr(cio.devNull), uintptr(wrs[stdout]), uintptr(wrs[stderr])},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	syscall.Close(wrs[stdout])
	syscall.Close(wrs[stderr])
	if err != nil {
		c.close()
		if dir != "" {
			// As os/exec does: a missing directory is the likelier cause.
			if _, serr := os.Stat(dir); serr != nil {
				err = serr
			}
		}
		return commandResult{exitCode: -1}, &os.PathError{Op: "fork/exec", Path: shell, Err: err}
	}
	r.groups = append(r.groups, pid)
	c.pid = pid
	// The child is not reaped yet, so its pid cannot name another process.
	// (pidfd_open sets close-on-exec itself.)
	if usePidfd {
		if fd, _, errno := syscall.RawSyscall(sysPidfdOpen, uintptr(pid), 0, 0); errno == 0 {
			c.pidfd = int(fd)
		}
	}
	c.out.begin(step)

	// On a timeout or cancel, stop the group while the loop reads and
	// waits for the leader.
	leaderDone := make(chan struct{})
	stopDone := make(chan struct{})
	stopOnDone := context.AfterFunc(ctx, func() {
		defer close(stopDone)
		r.stopGroups(leaderDone, []int{pid})
	})
	c.onExit = func() { close(leaderDone) }
	c.run()
	c.close()
	c.out.close()
	var res commandResult
	if !stopOnDone() {
		res.stopped = true
		<-stopDone
	}
	switch {
	case c.waitErr != nil:
		res.exitCode = -1
		return res, os.NewSyscallError("wait4", c.waitErr)
	case c.status.Signaled():
		res.exitCode = -1
		res.signal = c.status.Signal().String()
	default:
		res.exitCode = c.status.ExitStatus()
	}
	return res, nil
}

// killWait bounds the wait for processes to disappear after SIGKILL.
const killWait = 2 * time.Second

// stopGroups sends SIGTERM to the groups, waits up to the kill grace for
// them to be gone, then sends SIGKILL and waits for them to be gone.
// leader, when not nil, is closed once the Wait of the groups' leader
// returned: orphans are reaped only after that, so that reaping never
// takes the leader's exit status from runCommand's wait4.
func (r *jobRun) stopGroups(leader <-chan struct{}, pgids []int) {
	signalGroups(pgids, syscall.SIGTERM)
	grace := time.NewTimer(r.job.KillGrace)
	defer grace.Stop()
	if leader != nil {
		select {
		case <-leader:
		case <-grace.C:
			signalGroups(pgids, syscall.SIGKILL)
			<-leader
			waitGone(pgids, time.After(killWait))
			return
		}
	}
	if !waitGone(pgids, grace.C) {
		signalGroups(pgids, syscall.SIGKILL)
		waitGone(pgids, time.After(killWait))
	}
}

// waitGone reaps and polls the groups until they are empty (true) or
// until fires (false).
func waitGone(pgids []int, until <-chan time.Time) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		alive := false
		for _, g := range pgids {
			reapGroup(g)
			if groupAlive(g) {
				alive = true
			}
		}
		if !alive {
			return true
		}
		select {
		case <-until:
			return false
		case <-tick.C:
		}
	}
}

func signalGroups(pgids []int, sig syscall.Signal) {
	for _, g := range pgids {
		killGroup(g, sig)
	}
}

// killAll stops every process group the job created: background
// processes that outlived their command, then, with a sandbox, every
// process of the job (also those that left their group), and releases the
// job's I/O. Every leader has been waited for.
func (r *jobRun) killAll() {
	defer r.releaseIO()
	var alive []int
	for _, g := range r.groups {
		reapGroup(g)
		if groupAlive(g) {
			alive = append(alive, g)
		}
	}
	if len(alive) > 0 {
		r.stopGroups(nil, alive)
	}
	if r.job.Sandbox != nil {
		// An error (a process that survives SIGKILL) is the sandbox's to
		// report: its Close kills again and says so.
		_ = r.job.Sandbox.Kill()
	}
}

func killGroup(pgid int, sig syscall.Signal) {
	if pgid > 1 {
		_ = syscall.Kill(-pgid, sig)
	}
}

// groupAlive reports whether any process (zombies included) is left in
// the group.
func groupAlive(pgid int) bool {
	return pgid > 1 && syscall.Kill(-pgid, 0) != syscall.ESRCH
}

// reapGroup collects the exit status of every finished child of this
// process in the group: orphans re-parented to us as subreaper. The
// group's leader was reaped by runCommand's wait4 before.
func reapGroup(pgid int) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}

// checkEnv refuses variable names a process environment cannot carry.
func checkEnv(env map[string]string) error {
	var bad []string
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			bad = append(bad, strconv.Quote(k))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("invalid variables %s (a name may not be empty or contain = or NUL, a value may not contain NUL)", strings.Join(bad, ", "))
	}
	return nil
}

func mergeEnv(layers ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, l := range layers {
		for k, v := range l {
			out[k] = v
		}
	}
	return out
}

// buildEnv is the whole environment of a command: the defaults (TMPDIR only
// when tmp is set), then the granted variables (which may override them).
// Never nil, so exec does not fall back to inheriting the engine's
// environment.
func buildEnv(home, tmp, dir string, granted map[string]string) []string {
	defaults := map[string]string{
		"PATH":               DefaultPath,
		"HOME":               home,
		"CI":                 "true",
		"SIMPLECI":           "true",
		"SIMPLECI_WORKSPACE": dir,
	}
	if tmp != "" {
		defaults["TMPDIR"] = tmp
	}
	all := mergeEnv(defaults, granted)
	env := make([]string, 0, len(all))
	for k, v := range all {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}
