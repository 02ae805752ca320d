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

// readBufSize is how much one read from a command's pipe takes: the
// default pipe capacity, so a full pipe drains in one read.
const readBufSize = 64 << 10

// commandIO is what the commands of a job share, made once per job: stdin
// (/dev/null), the output collector and one read buffer per stream.
type commandIO struct {
	devNull *os.File
	out     *stepOutput
	bufs    [2][]byte
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
	r.cio = &commandIO{
		devNull: os.NewFile(uintptr(fd), os.DevNull),
		out:     r.em.newStepOutput(r.masks),
		bufs:    [2][]byte{make([]byte, readBufSize), make([]byte, readBufSize)},
	}
	return r.cio, nil
}

// releaseIO closes what commandIO made; the job is over.
func (r *jobRun) releaseIO() {
	if r.cio != nil {
		r.cio.devNull.Close()
		r.cio.out.stop()
		r.cio = nil
	}
}

// outputPipe makes a pipe for a command's stdout or stderr: the read end
// non-blocking, in Go's poller (so that it can be read with a deadline);
// the write end blocking and outside the poller, since only the child
// uses it.
func outputPipe() (rd, wr *os.File, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, nil, os.NewSyscallError("setnonblock", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}

// shell is the interpreter of every command.
const shell = "/bin/sh"

// runCommand runs one command of a step in its own process group and
// stops the group when ctx ends. The error is non-nil only when the
// command could not be started.
//
// It uses syscall.ForkExec and wait4 rather than os/exec: per command
// that saves opening /dev/null, two 32 KiB copy buffers, registering the
// child's ends of the pipes with the poller, a pidfd and two goroutines,
// which is most of the engine's own cost per step.
func (r *jobRun) runCommand(ctx context.Context, step int, script, dir string, env []string) (commandResult, error) {
	cio, err := r.commandIO()
	if err != nil {
		return commandResult{exitCode: -1}, err
	}
	var rds, wrs [2]*os.File
	for s := range rds {
		if rds[s], wrs[s], err = outputPipe(); err != nil {
			for _, f := range append(rds[:s:s], wrs[:s:s]...) {
				f.Close()
			}
			return commandResult{exitCode: -1}, err
		}
	}
	pid, err := syscall.ForkExec(shell, []string{shell, "-e", "-c", script}, &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{cio.devNull.Fd(), wrs[stdout].Fd(), wrs[stderr].Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	wrs[stdout].Close()
	wrs[stderr].Close()
	if err != nil {
		rds[stdout].Close()
		rds[stderr].Close()
		if dir != "" {
			// As os/exec does: a missing directory is the likelier cause.
			if _, serr := os.Stat(dir); serr != nil {
				err = serr
			}
		}
		return commandResult{exitCode: -1}, &os.PathError{Op: "fork/exec", Path: shell, Err: err}
	}
	r.groups = append(r.groups, pid)
	out := cio.out
	out.begin(step)
	var readers sync.WaitGroup
	readers.Add(2)
	for s := range rds {
		go func() {
			defer readers.Done()
			buf := cio.bufs[s]
			for {
				n, err := rds[s].Read(buf)
				if n > 0 {
					out.write(s, buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
	}

	// On a timeout or cancel, stop the group while this goroutine waits
	// for the leader.
	leaderDone := make(chan struct{})
	stopDone := make(chan struct{})
	stopOnDone := context.AfterFunc(ctx, func() {
		defer close(stopDone)
		r.stopGroups(leaderDone, []int{pid})
	})
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	close(leaderDone)
	var res commandResult
	if !stopOnDone() {
		res.stopped = true
		<-stopDone
	}
	// Background processes may still hold the pipes: read what they write
	// for WaitDelay, then stop reading.
	deadline := time.Now().Add(WaitDelay)
	for _, f := range rds {
		f.SetReadDeadline(deadline)
	}
	readers.Wait()
	rds[stdout].Close()
	rds[stderr].Close()
	out.close()
	switch {
	case err != nil:
		res.exitCode = -1
		return res, os.NewSyscallError("wait4", err)
	case ws.Signaled():
		res.exitCode = -1
		res.signal = ws.Signal().String()
	default:
		res.exitCode = ws.ExitStatus()
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
// processes that outlived their command, and releases the job's I/O.
// Every leader has been waited for.
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

// buildEnv is the whole environment of a command: the defaults, then the
// granted variables (which may override them). Never nil, so exec does not
// fall back to inheriting the engine's environment.
func buildEnv(home, dir string, granted map[string]string) []string {
	all := mergeEnv(map[string]string{
		"PATH":               DefaultPath,
		"HOME":               home,
		"CI":                 "true",
		"SIMPLECI":           "true",
		"SIMPLECI_WORKSPACE": dir,
	}, granted)
	env := make([]string, 0, len(all))
	for k, v := range all {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}
