package sandbox

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hostname is the job's host name when it has its own UTS namespace.
const hostname = "simpleci"

// launcher is an OS thread that starts every process of one job. What is
// set on the thread is inherited by every child it forks and by nothing
// else in the runner:
//
//   - no_new_privs (prctl), which no setuid binary or file capability can
//     undo in the job;
//   - network (unless the job has network), IPC and UTS namespaces made
//     once per job, so that all the job's commands share them: a service a
//     step starts in the background is reachable on loopback by later
//     steps, and unreachable from the host and from other jobs;
//   - for the duration of one fork, membership of the job's cgroup v1
//     groups (cgroup v1 membership is per thread), so that the child is in
//     the job's groups before it runs a single instruction.
//
// The goroutine stays locked to the thread and never unlocks it: when it
// returns, the Go runtime ends the thread instead of reusing it. bwrap's
// --die-with-parent is bound to this thread, so the thread lives as long as
// the sandbox.
type launcher struct {
	reqs    chan func()
	stopped chan struct{}
	tid     int
	// nnp is true when no_new_privs is set on the thread.
	nnp bool
	// unshared are the namespaces made on the thread: "net", "ipc", "uts".
	unshared []string
	// setupErr says why namespaces could not be made, for the log.
	setupErr error
}

// newLauncher starts the thread. unshareNet makes a network namespace with
// only loopback, up; namespaces are made only when the runner has
// CAP_SYS_ADMIN (root).
func newLauncher(unshareNet, namespaces bool) *launcher {
	l := &launcher{reqs: make(chan func()), stopped: make(chan struct{})}
	ready := make(chan struct{})
	// body runs on the locked launcher thread.
	body := func() {
		// Deliberately never unlocked: see the type's doc.
		defer close(l.stopped)
		l.tid = unix.Gettid()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err == nil {
			l.nnp = true
		}
		if namespaces {
			l.unshared, l.setupErr = unshareThread(unshareNet)
		}
		close(ready)
		for f := range l.reqs {
			f()
		}
	}
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			body()
			return
		}
		// The main thread, which the runtime never ends and whose
		// namespaces /proc/self shows: hold it, so that a new goroutine
		// gets another thread, then give it back unchanged.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			body()
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
	<-ready
	return l
}

// unshareThread gives the calling (locked) thread new IPC, UTS and, when
// asked, network namespaces.
func unshareThread(net bool) ([]string, error) {
	flags := unix.CLONE_NEWIPC | unix.CLONE_NEWUTS
	names := []string{"ipc", "uts"}
	if net {
		flags |= unix.CLONE_NEWNET
		names = append([]string{"net"}, names...)
	}
	if err := unix.Unshare(flags); err != nil {
		return nil, fmt.Errorf("unshare %s: %w", strings.Join(names, ","), err)
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return names, fmt.Errorf("sethostname: %w", err)
	}
	if net {
		if err := loopbackUp(); err != nil {
			return names, fmt.Errorf("loopback up: %w", err)
		}
	}
	return names, nil
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// do runs f on the thread and returns when it is done.
func (l *launcher) do(f func()) {
	done := make(chan struct{})
	l.reqs <- func() {
		defer close(done)
		f()
	}
	<-done
}

// nsLink is the thread's namespace of kind ("net", "user", ...), as
// readlink shows it ("net:[4026531840]").
func (l *launcher) nsLink(kind string) string {
	s, _ := os.Readlink("/proc/" + strconv.Itoa(os.Getpid()) + "/task/" + strconv.Itoa(l.tid) + "/ns/" + kind)
	return s
}

// stop ends the thread, and with it what was set on it.
func (l *launcher) stop() {
	close(l.reqs)
	<-l.stopped
}

// markInheritedCloseOnExec marks every descriptor above 2 close-on-exec, so
// that nothing the runner inherited or opened without O_CLOEXEC reaches a
// job. Descriptors a fork passes on purpose are dup'ed onto 0, 1, 2, ... in
// the child, which clears the flag on the copy.
func markInheritedCloseOnExec() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
