package sandbox

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The range the job users are taken from when [Options.UID] is zero: each
// sandbox takes a uid of the range (and the gid of the same number) that no
// account in the user and group databases has, that no process runs as, and
// that no other sandbox on the machine holds. Nothing is created in /etc.
const (
	UIDBase  = 64000
	UIDCount = 1000
)

// uidCursor makes successive sandboxes take different uids (round robin
// from a random start), so that a uid is reused as late as possible.
var uidCursor atomic.Int64

func init() { uidCursor.Store(rand.Int64N(UIDCount)) }

// stateBase is the directory that holds the sandboxes' state directories
// and lock files. It is 0711: the job users can reach their own HOME in it
// but list nothing.
func stateBase() string {
	if uid := os.Geteuid(); uid != 0 {
		return filepath.Join(os.TempDir(), "simpleci-sandbox-"+strconv.Itoa(uid))
	}
	return filepath.Join(os.TempDir(), "simpleci-sandbox")
}

func makeStateBase() (string, error) {
	base := stateBase()
	if err := os.MkdirAll(base, 0o711); err != nil {
		return "", err
	}
	fi, err := os.Lstat(base)
	if err != nil {
		return "", err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || st == nil || int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%s is not a directory owned by the runner", base)
	}
	if err := os.Chmod(base, 0o711); err != nil {
		return "", err
	}
	return base, nil
}

// tryLock takes an exclusive lock on file, without waiting; ok is false
// when another holder has it.
func tryLock(file string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return f, true, nil
}

// lockHeld reports whether someone holds the lock on file.
func lockHeld(file string) bool {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

func uidLockFile(base string, uid int) string {
	return filepath.Join(base, "uid-"+strconv.Itoa(uid)+".lock")
}

// allocateUID takes a free uid of the range and returns it with its lock.
// A uid is free when no account has it, no sandbox holds its lock and no
// process runs as it. The last is known without looking when the uid's
// lock file says "clean": its last holder wrote that on Close, after it saw
// no process of the uid left (see markClean). A holder that crashed left
// "held" instead, and then every process is looked at (one scan of /proc,
// which costs ~40 µs per process on the machine).
func allocateUID(base string) (int, *os.File, error) {
	var used map[int]bool
	start := uidCursor.Add(1)
	for i := int64(0); i < UIDCount; i++ {
		uid := UIDBase + int((start+i)%UIDCount)
		if isAccount(uid) {
			continue
		}
		f, ok, err := tryLock(uidLockFile(base, uid))
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			continue
		}
		if !releasedClean(f) {
			if used == nil {
				used = processUIDs()
			}
			if used[uid] {
				f.Close()
				continue
			}
		}
		if err := markUID(f, uidHeld); err != nil {
			f.Close()
			return 0, nil, err
		}
		return uid, f, nil
	}
	return 0, nil, fmt.Errorf("no free uid in %d..%d", UIDBase, UIDBase+UIDCount-1)
}

// What a uid's lock file says about the uid (see allocateUID).
const (
	uidHeld  = "held\n"
	uidClean = "clean\n"
)

// releasedClean reports whether the lock file f says that no process of
// its uid was left when its last holder let it go.
func releasedClean(f *os.File) bool {
	b := make([]byte, len(uidClean)+1)
	n, _ := f.ReadAt(b, 0)
	return string(b[:n]) == uidClean
}

// markUID replaces what the lock file f says with state.
func markUID(f *os.File, state string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(state), 0)
	return err
}

// isAccount reports whether uid is a user or group in the system's
// databases (Debian gives some of 60000-64999 to packages, e.g.
// libvirt-qemu): those are never job users.
func isAccount(uid int) bool {
	id := strconv.Itoa(uid)
	if _, err := user.LookupId(id); err == nil {
		return true
	}
	_, err := user.LookupGroupId(id)
	return err == nil
}

// procUIDs returns the real, effective, saved and filesystem uids of pid.
func procUIDs(pid string) ([]int, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return nil, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			var out []int
			for _, f := range strings.Fields(rest) {
				if n, err := strconv.Atoi(f); err == nil {
					out = append(out, n)
				}
			}
			return out, true
		}
	}
	return nil, false
}

// processUIDs is the set of uids that processes run as.
func processUIDs() map[int]bool {
	out := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		uids, _ := procUIDs(e.Name())
		for _, u := range uids {
			out[u] = true
		}
	}
	return out
}

// processesOf lists the processes that have uid as any of their uids and
// that Kill waits for (see pending).
func processesOf(uid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		uids, _ := procUIDs(e.Name())
		for _, u := range uids {
			if u == uid {
				if pending(pid) {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// killUID sends SIGKILL to every process of uid at once: a helper process
// running as uid calls kill(-1, SIGKILL), which the kernel delivers to
// every process the caller may signal (itself excepted) under one lock, so
// that no process of the uid forks past it. The helper is started outside
// the job's cgroups, so that a full pids limit cannot stop it. Needs
// CAP_SETUID (root).
//
// A thread of the runner could do the same without a process, but while
// it has the uid the job could tgkill it, and with it the runner.
func killUID(uid, gid int) error {
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer devNull.Close()
	pid, err := syscall.ForkExec(shellPath, []string{shellPath, "-c", "kill -9 -1"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []uintptr{devNull.Fd(), devNull.Fd(), devNull.Fd()},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		},
	})
	if err != nil {
		return fmt.Errorf("kill helper: %w", err)
	}
	var ws syscall.WaitStatus
	for {
		_, err = syscall.Wait4(pid, &ws, 0, nil)
		if err != syscall.EINTR {
			break
		}
	}
	return nil
}
