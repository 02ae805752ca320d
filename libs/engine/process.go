package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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

// runCommand runs one command of a step in its own process group and
// stops the group when ctx ends. The error is non-nil only when the
// command could not be started.
func (r *jobRun) runCommand(ctx context.Context, step int, script, dir string, env []string) (commandResult, error) {
	out := r.em.newStepOutput(step, r.masks)
	cmd := exec.Command("/bin/sh", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = out.writer(streamStdout)
	cmd.Stderr = out.writer(streamStderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = WaitDelay
	if err := cmd.Start(); err != nil {
		out.close()
		return commandResult{exitCode: -1}, err
	}
	pgid := cmd.Process.Pid
	r.groups = append(r.groups, pgid)

	waited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(waited)
	}()
	var res commandResult
	select {
	case <-waited:
	case <-ctx.Done():
		res.stopped = true
		r.stopGroups(waited, []int{pgid})
		<-waited
	}
	out.close()
	st := cmd.ProcessState
	switch {
	case st == nil:
		res.exitCode = -1
	default:
		res.exitCode = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.signal = ws.Signal().String()
		}
	}
	var exitErr *exec.ExitError
	if waitErr != nil && st == nil && !errors.As(waitErr, &exitErr) {
		return res, waitErr
	}
	return res, nil
}

// killWait bounds the wait for processes to disappear after SIGKILL.
const killWait = 2 * time.Second

// stopGroups sends SIGTERM to the groups, waits up to the kill grace for
// them to be gone, then sends SIGKILL and waits for them to be gone.
// leader, when not nil, is closed once the Wait of the groups' leader
// returned: orphans are reaped only after that, so that reaping never
// takes the leader's exit status from exec.Cmd.Wait.
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
// processes that outlived their command. Every leader has been waited for.
func (r *jobRun) killAll() {
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
// group's leader was reaped by exec.Cmd.Wait before.
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
