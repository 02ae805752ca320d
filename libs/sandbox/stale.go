package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CleanupStale removes what sandboxes of an earlier runner process left
// behind after a crash or SIGKILL: every job cgroup under the runner's
// parent group ("simpleci", in every hierarchy) that no live sandbox holds,
// after killing its processes; every process of a uid of the job range
// that no live sandbox holds (root only); and the state directories
// (HOME, private /tmp) of those sandboxes. Sandboxes of this or another
// runner process that are still open are left alone (each holds a lock).
// Call it once when the runner starts, before its first job.
func CleanupStale(log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	base := stateBase()
	var errs []error
	names, v1Names := staleGroupNames()
	for _, name := range names {
		if lockHeld(filepath.Join(base, name+".lock")) {
			continue
		}
		c := loadJobCgroups(name, v1Names)
		if c.v1 == nil && c.v2 == nil {
			continue
		}
		n := len(c.procs())
		if err := c.kill(time.Now().Add(killTimeout)); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := c.delete(); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", name, err))
			continue
		}
		log.Info("sandbox: removed a cgroup left by an earlier runner", "cgroup", name, "killed", n)
	}
	if os.Geteuid() == 0 {
		for uid := range processUIDs() {
			if uid < UIDBase || uid >= UIDBase+UIDCount || lockHeld(uidLockFile(base, uid)) || isAccount(uid) {
				continue
			}
			n := len(processesOf(uid))
			if n == 0 {
				continue
			}
			if err := killUID(uid, uid); err != nil {
				errs = append(errs, err)
				continue
			}
			log.Info("sandbox: killed processes left by an earlier runner", "uid", uid, "processes", n)
		}
	}
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "uid-"):
			// Kept: removing a uid's lock file while another process opens
			// it could let two sandboxes hold the same uid.
		case strings.HasSuffix(name, ".lock"):
			if _, err := os.Stat(filepath.Join(base, strings.TrimSuffix(name, ".lock"))); err != nil && !lockHeld(filepath.Join(base, name)) {
				os.Remove(filepath.Join(base, name))
			}
		case e.IsDir():
			lock := filepath.Join(base, name+".lock")
			if lockHeld(lock) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(base, name)); err != nil {
				errs = append(errs, err)
				continue
			}
			os.Remove(lock)
			log.Info("sandbox: removed the state of a sandbox left by an earlier runner", "dir", filepath.Join(base, name))
		}
	}
	return errors.Join(errs...)
}
