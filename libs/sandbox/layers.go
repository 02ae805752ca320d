package sandbox

import (
	"fmt"
	"slices"
	"strings"
)

// Layers says which isolation layers a [Sandbox] has. Every field is what was
// detected on the machine when the sandbox was made (a probe command runs
// through the sandbox and reports its own credentials and namespaces), never
// what was merely asked for.
type Layers struct {
	// Cgroup is the cgroup version in use: "v1", "v2", "v1+v2" (v1
	// controllers for the limits and a v2 group for tracking and
	// cgroup.kill, as on hybrid machines) or "" for none.
	Cgroup string
	// Controllers are the cgroup controllers the job's group has, each
	// holding its limit when one was set: "memory", "pids", "cpu" and, on
	// v1, "freezer".
	Controllers []string
	// Namespaces are the namespaces the job's processes do not share with
	// the runner: "user", "mount", "pid", "net", "ipc", "uts", "cgroup".
	Namespaces []string
	// User is true when the job runs as its own unprivileged user (UID,
	// GID), false when it runs as the runner's.
	User bool
	// UID and GID are the job's credentials as the host sees them.
	UID, GID int
	// FS is "bubblewrap" when the job sees a minimal filesystem (read-only
	// system directories, its workspace, HOME and a private /tmp) and
	// "host" when it sees the runner's, limited only by file permissions.
	FS string
	// Net is the job's network: "loopback" (a namespace of its own with
	// loopback only), "slirp4netns+filter" (also a way out through
	// slirp4netns, with the host, private, link-local and the operator's
	// ranges unreachable) or "host" (the host's network: no namespace).
	Net string
	// NoNewPrivs is true when the job runs with no_new_privs: setuid and
	// file capabilities grant nothing.
	NoNewPrivs bool
	// NoCaps is true when the job's effective capability set is empty.
	NoCaps bool
	// Kill lists how [Sandbox.Kill] finds the job's processes, strongest
	// first: "cgroup.kill" (v2), "cgroup" (v1: freeze, SIGKILL every
	// process, repeat), "uid" (every process of the job's user, killed in
	// one kill(-1) as that user, where the groups do not hold the whole job), "pid namespace" (the job's PID namespace
	// dies with its init) and "process groups" (the floor, which misses
	// processes that called setsid).
	Kill []string
}

// Weak reports whether the isolation is weak: the job runs as the runner's
// user, or nothing but process groups finds its processes.
func (l Layers) Weak() bool {
	return !l.User || l.onlyProcessGroups()
}

func (l Layers) onlyProcessGroups() bool {
	for _, k := range l.Kill {
		if k != "process groups" {
			return false
		}
	}
	return true
}

// String is the line the run's log starts with, for example
//
//	isolation: cgroup=v1+v2 memory,pids,cpu,freezer; namespaces=user,mount,pid,net,ipc,uts,cgroup; user=uid 64001; fs=bubblewrap; no_new_privs; caps=none; kill=cgroup.kill,cgroup,pid namespace
//
// and, when [Layers.Weak] is true, "isolation: weak (why): ..." followed by
// the same fields.
func (l Layers) String() string {
	var b strings.Builder
	b.WriteString("isolation: ")
	if l.Weak() {
		var why []string
		if l.onlyProcessGroups() {
			why = append(why, "process groups only")
		}
		if !l.User {
			why = append(why, "runs as the runner's user")
		}
		fmt.Fprintf(&b, "weak (%s): ", strings.Join(why, ", "))
	}
	if l.Cgroup == "" {
		b.WriteString("cgroup=none")
	} else {
		fmt.Fprintf(&b, "cgroup=%s %s", l.Cgroup, strings.Join(l.Controllers, ","))
	}
	if len(l.Namespaces) == 0 {
		b.WriteString("; namespaces=none")
	} else {
		fmt.Fprintf(&b, "; namespaces=%s", strings.Join(l.Namespaces, ","))
	}
	if l.User {
		fmt.Fprintf(&b, "; user=uid %d", l.UID)
	} else {
		fmt.Fprintf(&b, "; user=runner (uid %d)", l.UID)
	}
	fmt.Fprintf(&b, "; fs=%s", l.FS)
	if l.Net != "" {
		fmt.Fprintf(&b, "; net=%s", l.Net)
	}
	if l.NoNewPrivs {
		b.WriteString("; no_new_privs")
	}
	if l.NoCaps {
		b.WriteString("; caps=none")
	} else {
		b.WriteString("; caps=some")
	}
	fmt.Fprintf(&b, "; kill=%s", strings.Join(l.Kill, ","))
	return b.String()
}

// Missing names the isolation layers the job lacks, each with what would
// give it, in a fixed order; nil when it has them all. A runner that is
// to fail closed refuses a job for which this is not empty.
func (l Layers) Missing() []string {
	var out []string
	if l.Cgroup == "" {
		out = append(out, "cgroup (a root runner; cgroup v1 controllers or v2 with memory, pids and cpu delegated)")
	} else {
		var lack []string
		for _, c := range []string{"memory", "pids", "cpu"} {
			if !slices.Contains(l.Controllers, c) {
				lack = append(lack, c)
			}
		}
		if len(lack) > 0 {
			out = append(out, fmt.Sprintf("cgroup controllers %s (cgroup %s has %s)", strings.Join(lack, ","), l.Cgroup, strings.Join(l.Controllers, ",")))
		}
	}
	if !l.User {
		out = append(out, "job user (the runner is not root)")
	}
	if l.FS != "bubblewrap" {
		out = append(out, "bubblewrap (user, mount and pid namespaces, filesystem view: Debian package bubblewrap, unprivileged user namespaces)")
	}
	if l.Net == "host" {
		out = append(out, "network namespace (the job has the host's network: a filtered network needs a root runner and the Debian package slirp4netns)")
	}
	return out
}
